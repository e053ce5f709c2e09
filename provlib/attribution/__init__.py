"""Training-data attribution for text-to-image models (Zhang et al., arXiv 2409.15781): distances, key samples,
instance-level conf, the statistical-level discriminator, metrics, memorization, and their queries over the zoo."""
