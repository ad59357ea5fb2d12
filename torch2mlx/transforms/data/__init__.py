"""Data and checkpoints: `data-loader` (loader.py: TensorDataset / DataLoader) and `checkpoint`
(checkpoint.py: torch.save / torch.load of a state_dict)."""
