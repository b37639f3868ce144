"""sentitune: fine-tune transformers for sentiment classification and measure them against baselines."""

__version__ = "0.1.0"
