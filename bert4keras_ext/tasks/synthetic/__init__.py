"""Seeded generators of small task data in the real datasets' formats (ape210k, WebQA, a
sentiment corpus): the example scripts' default data, since the real sets cannot be downloaded
here."""
