"""Retrieval over the knowledge base: passages, the symptom normaliser, sparse and dense retrievers, and the prompt builder."""
