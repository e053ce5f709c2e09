"""The shared core: errors, paths, the artifact store and seeding, result tables, data and procedural worlds,
models, training, generation, the zoo of bases, sources and suspects, fan-out and plotting helpers."""
