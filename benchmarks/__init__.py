"""kseq2seq's speed and memory benchmark (`speed.py`) and its PyTorch twins."""
