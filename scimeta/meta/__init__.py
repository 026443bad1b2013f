"""Meta-learning on torch.func: MAML and relatives."""
