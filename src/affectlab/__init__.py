"""affectlab: multimodal emotion recognition from physiological and behavioural signals."""

__version__ = "0.1.0"
