"""In-house PyTorch networks whose state-dict layout equals the official checkpoints'."""
