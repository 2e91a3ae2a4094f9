"""Does a GAN-trained encoder beat EfficientNet-Lite? (training budget, verdict on three measures)"""
