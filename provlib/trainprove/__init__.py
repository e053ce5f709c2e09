"""TrainProVe (Xie et al., CVPR 2025, arXiv 2503.09122): did a suspect classifier train on my generator's images?
The provenance test, the classifiers, the generators and their zoo, and the study tables."""
