"""Building blocks several models share: conv blocks, attention, the landmark map, the PatchGAN
discriminator and VGG-19 features for perceptual losses."""
