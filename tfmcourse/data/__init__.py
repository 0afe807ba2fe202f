"""Offline data sets for the course: nothing here downloads anything.

======================  ===================================================================
:mod:`.seq_tasks`       copy / reverse / sort / add, their vocabulary, collate and loaders (ch06)
:mod:`.text`            the standard library as a text corpus, user text files, LM windows (ch06)
:mod:`.images`          scikit-learn's 8x8 digits, procedural shapes, MNIST / CIFAR-10 readers (ch07)
======================  ===================================================================
"""
from .images import SHAPES, ImageSplit, ShapesDataset, load_digits_split, read_cifar10_batch, read_mnist_idx
from .seq_tasks import (BOS, EOS, IGNORE_INDEX, PAD, SEQ_VOCAB, TASKS, SeqTaskDataset, SeqVocab, collate_seq2seq,
                        make_seq2seq_example, max_lengths, seq2seq_loaders)
from .text import TokenWindowDataset, get_lm_batch, load_text, stdlib_corpus, stdlib_files, train_val_split

__all__ = ["TASKS", "PAD", "BOS", "EOS", "IGNORE_INDEX", "SeqVocab", "SEQ_VOCAB", "make_seq2seq_example",
           "SeqTaskDataset", "collate_seq2seq", "seq2seq_loaders", "max_lengths",
           "stdlib_corpus", "stdlib_files", "load_text", "train_val_split", "get_lm_batch", "TokenWindowDataset",
           "ImageSplit", "load_digits_split", "ShapesDataset", "SHAPES", "read_mnist_idx", "read_cifar10_batch"]
