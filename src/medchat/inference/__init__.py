"""Inference: batched generation and scoring, speculative drafting, disease ranking, and the packaged chatbot."""
