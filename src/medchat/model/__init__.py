"""The language model: tokenizers and the dialogue token format, and building or loading a causal LM."""
