"""Learning from labeled photos: few-shot classifiers, prompt learning, saved classifiers."""
