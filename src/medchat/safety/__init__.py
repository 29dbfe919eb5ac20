"""Safety: the guard's rules, the training text around them, the guard itself and the triage classifier. No torch here."""
