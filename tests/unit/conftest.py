from tests.collection_path import make_importable

make_importable()
