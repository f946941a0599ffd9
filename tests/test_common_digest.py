import hashlib

from sim2real.common.digest import BLOCK, file_sha256, update_with_file


def test_file_sha256_reads_a_file_of_several_blocks_whole(tmp_path):
    data = bytes(range(256)) * (BLOCK // 128 + 3)  # two blocks and a part
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256(b"prefix")
    update_with_file(digest, path)
    assert digest.hexdigest() == hashlib.sha256(b"prefix" + data).hexdigest()
