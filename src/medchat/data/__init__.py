"""The data the model learns from: canonical names, the knowledge base, the lay lexicon, dialogue examples, augmentation, splits and user feedback. No torch here."""
