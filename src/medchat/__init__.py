"""medchat: a reproducible DVC pipeline that trains and evaluates a medical chatbot LM."""

__version__ = "0.1.0"
