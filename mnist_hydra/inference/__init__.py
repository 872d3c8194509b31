"""Inference: finding and loading a trained model, and predicting people's images with it."""
