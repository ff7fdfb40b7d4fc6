"""What the example tasks (`examples/task_*.py`) share, so each script can be copied alone: the
flags, strategy and tokenizer set-up (`common`), ape210k's preprocessing and accuracy
(`ape210k`), reading-comprehension data, merging and metrics (`reading_comprehension`) and
seeded stand-in data in the real formats (`synthetic`). This floor sits above models,
decoding and tokenizers; nothing in the package imports it.
"""
