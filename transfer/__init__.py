"""Driving datasets, the freezing adapter, fine-tuning and export to the car."""
