"""Reading and validating .bin/.idx pairs, compared with counts computed directly from the
documents the test wrote."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from idx_writer import idx_layout, patch, write_mmidx, write_tntidx

from tokcount import FileCheckError, TokenCheckOptions, scan
from tokcount.formats.indexed import check_tokens, open_shard


def expected_counts(documents):
    return {
        "documents": len(documents),
        "sequences": sum(len(d) for d in documents),
        "empty_documents": sum(1 for d in documents if len(d) == 0),
        "tokens": sum(len(s) for d in documents for s in d),
    }


def counts_of(shard):
    return {
        "documents": shard.documents,
        "sequences": shard.sequences,
        "empty_documents": shard.empty_documents,
        "tokens": shard.tokens,
    }


DOCS = [
    [[5, 6, 7, 0]],
    [],  # empty document: a doc_idx entry, no sequence
    [[1, 2], [3], []],  # several sequences, one of them zero-length
    [[9] * 40],
    [],
]

documents_strategy = st.lists(st.lists(st.lists(st.integers(0, 65535), max_size=12), max_size=3), max_size=25)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_counts_match_documents(tmp_path, dtype):
    write_mmidx(tmp_path / "d", DOCS, dtype=dtype)
    shard = open_shard(str(tmp_path / "d.bin"))
    assert counts_of(shard) == expected_counts(DOCS)
    assert shard.dtype == np.dtype(dtype)
    assert shard.format == "mmidx"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents=documents_strategy)
def test_counts_match_documents_property(tmp_path_factory, documents):
    prefix = tmp_path_factory.mktemp("p") / "d"
    write_mmidx(prefix, documents)
    shard = open_shard(str(prefix))
    assert counts_of(shard) == expected_counts(documents)
    assert shard.sizes.tolist() == [len(s) for d in documents for s in d]


def test_int32_ids_above_uint16_range(tmp_path):
    docs = [[[70000, 1, 128255]], [[65536, 2]]]
    write_mmidx(tmp_path / "d", docs, dtype=np.int32)
    shard = open_shard(str(tmp_path / "d.idx"))
    check = check_tokens(shard, vocab_size=128256)
    assert check.max_token_id == 128255
    assert check.out_of_range == 0
    check = check_tokens(shard, vocab_size=65536)
    assert check.out_of_range == 3  # 70000, 128255, 65536
    assert check.first_out_of_range == 0


def test_empty_dataset(tmp_path):
    write_mmidx(tmp_path / "d", [[], []])  # two empty docs: N=0, D=3, 58-byte index (spec §1.1)
    assert (tmp_path / "d.idx").stat().st_size == 58
    assert (tmp_path / "d.bin").stat().st_size == 0
    shard = open_shard(str(tmp_path / "d"))
    assert counts_of(shard) == {"documents": 2, "sequences": 0, "empty_documents": 2, "tokens": 0}
    assert check_tokens(shard, 10, eod=0).max_token_id is None


def test_tntidx_legacy(tmp_path):
    docs = [[[1, 2, 3]], [], [[4], [5, 6]]]
    write_tntidx(tmp_path / "t", docs)
    shard = open_shard(str(tmp_path / "t"))
    assert shard.format == "tntidx"
    assert counts_of(shard) == expected_counts(docs)
    assert check_tokens(shard, 7).max_token_id == 6


def test_multimodal_index_detected(tmp_path):
    docs = [[[1, 2], [200, 201, 202]], [[3]]]
    write_mmidx(tmp_path / "m", docs, dtype=np.int32, multimodal_modes=[0, 1, 0])
    shard = open_shard(str(tmp_path / "m"))
    assert shard.format == "mmidx-multimodal"
    assert counts_of(shard) == expected_counts(docs)
    assert any("multimodal" in w for w in shard.warnings)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents=documents_strategy, vocab=st.integers(1, 70000), eod=st.integers(0, 65535), window=st.integers(1, 64))
def test_token_check_matches_direct_computation(tmp_path_factory, documents, vocab, eod, window):
    prefix = tmp_path_factory.mktemp("v") / "d"
    write_mmidx(prefix, documents)
    flat = [t for d in documents for s in d for t in s]
    nonempty = [[t for s in d for t in s] for d in documents]
    nonempty = [d for d in nonempty if d]
    # a tiny window forces documents and blocks across window boundaries
    check = check_tokens(open_shard(str(prefix)), vocab, eod, window_bytes=2 * window)
    assert check.max_token_id == (max(flat) if flat else None)
    assert check.out_of_range == sum(1 for t in flat if t >= vocab)
    assert check.documents_missing_eod == sum(1 for d in nonempty if d[-1] != eod)


def test_missing_eod_position_names_document(tmp_path):
    docs = [[[4, 0]], [], [[5, 6]], [[7, 0]]]
    write_mmidx(tmp_path / "d", docs)
    check = check_tokens(open_shard(str(tmp_path / "d")), 10, eod=0)
    assert check.documents_missing_eod == 1
    assert check.first_document_missing_eod == 2


# --- corruption: every check fails loudly, naming the file, the check and the position ---


def _written(tmp_path, docs=DOCS, dtype=np.uint16):
    prefix = tmp_path / "c"
    write_mmidx(prefix, docs, dtype=dtype)
    return prefix, str(prefix) + ".idx", idx_layout(prefix)


def _fails(prefix, check_fragment, position_fragment=None):
    with pytest.raises(FileCheckError) as info:
        open_shard(str(prefix))
    err = info.value
    assert check_fragment in err.check
    if position_fragment is not None:
        assert err.position is not None and position_fragment in err.position
    assert "\n" not in str(err)
    return err


def test_bad_magic(tmp_path):
    prefix, idx, _ = _written(tmp_path)
    patch(idx, 0, "<4s", b"XXXX")
    _fails(prefix, "magic", "byte 0")


def test_bad_version(tmp_path):
    prefix, idx, _ = _written(tmp_path)
    patch(idx, 9, "<Q", 2)
    _fails(prefix, "version")


@pytest.mark.parametrize("code", [6, 7, 0, 9])
def test_bad_or_ambiguous_dtype_code(tmp_path, code):
    prefix, idx, _ = _written(tmp_path)
    patch(idx, 17, "<B", code)
    err = _fails(prefix, "dtype code", "byte 17")
    if code in (6, 7):
        assert "NeoX" in str(err) and "Megatron" in str(err)


def test_truncated_index(tmp_path):
    prefix, idx, layout = _written(tmp_path)
    with open(idx, "r+b") as f:
        f.truncate(layout["end"] - 3)
    err = _fails(prefix, "index size")
    assert "truncated" in str(err)


def test_truncated_header(tmp_path):
    prefix, idx, _ = _written(tmp_path)
    with open(idx, "r+b") as f:
        f.truncate(20)
    _fails(prefix, "header")


def test_bad_pointer(tmp_path):
    prefix, idx, layout = _written(tmp_path)
    patch(idx, layout["pointers"] + 8 * 2, "<q", 999)
    _fails(prefix, "pointers", "sequence 2")


def test_int32_wrapped_pointers_are_explained(tmp_path):
    prefix, idx, layout = _written(tmp_path)
    true_pointer = int(np.frombuffer(open(idx, "rb").read()[layout["pointers"] : layout["doc_idx"]], "<i8")[3])
    patch(idx, layout["pointers"] + 8 * 3, "<q", true_pointer - 2**32)
    err = _fails(prefix, "pointers", "sequence 3")
    assert "2^32" in str(err)


def test_negative_size(tmp_path):
    prefix, idx, layout = _written(tmp_path)
    patch(idx, layout["sizes"] + 4 * 1, "<i", -2)
    _fails(prefix, "sizes >= 0", "sequence 1")


def test_doc_idx_first_not_zero(tmp_path):
    prefix, idx, layout = _written(tmp_path)
    patch(idx, layout["doc_idx"], "<q", 1)
    _fails(prefix, "doc_idx[0]", "document 0")


def test_doc_idx_decreasing(tmp_path):
    prefix, idx, layout = _written(tmp_path)
    patch(idx, layout["doc_idx"] + 8 * 3, "<q", 0)
    _fails(prefix, "non-decreasing", "document 3")


def test_doc_idx_last_not_n(tmp_path):
    prefix, idx, layout = _written(tmp_path, docs=[[[1, 2]], [[3]]])
    patch(idx, layout["doc_idx"] + 8 * (layout["d"] - 1), "<q", layout["n"] - 1)
    _fails(prefix, "doc_idx[-1] == N")


def test_neox_merged_file_without_doc_idx(tmp_path):
    # NeoX merge_file_ keeps doc_idx=[0] (spec §1.6): D = 1 while N > 0.
    prefix = tmp_path / "merged"
    write_mmidx(prefix, [[[1, 2, 3], [4]]])
    raw = bytearray((tmp_path / "merged.idx").read_bytes())
    n = 2
    raw[26:34] = (1).to_bytes(8, "little")
    raw = raw[: 34 + 12 * n + 8]
    (tmp_path / "merged.idx").write_bytes(bytes(raw))
    err = _fails(prefix, "doc_idx[-1] == N")
    assert "merge_file_" in str(err)


@pytest.mark.parametrize("delta", [-1, 1])
def test_bin_size_mismatch(tmp_path, delta):
    prefix, _, _ = _written(tmp_path)
    binf = str(prefix) + ".bin"
    with open(binf, "r+b") as f:
        f.truncate(f.seek(0, 2) + delta)
    err = _fails(prefix, ".bin size")
    assert err.path.endswith(".bin")


def test_missing_partner(tmp_path):
    prefix, idx, _ = _written(tmp_path)
    (tmp_path / "c.bin").unlink()
    _fails(prefix, "pairing")


def test_scan_reports_healthy_files_and_failures(tmp_path):
    good = tmp_path / "good"
    write_mmidx(good, DOCS)
    bad = tmp_path / "bad"
    write_mmidx(bad, DOCS)
    patch(str(bad) + ".idx", 9, "<Q", 3)
    report = scan([str(good) + ".bin", str(bad) + ".bin", str(tmp_path / "nothing*.bin")])
    assert [f.path for f in report.files] == [str(good)]
    assert report.total["tokens"] == expected_counts(DOCS)["tokens"]
    assert len(report.failures) == 2
    assert not report.ok


def test_scan_accepts_prefix_bin_idx_and_glob_without_duplicates(tmp_path):
    for name in ("a", "b"):
        write_mmidx(tmp_path / name, DOCS)
    report = scan([str(tmp_path / "a"), str(tmp_path / "a.idx"), str(tmp_path / "*.bin"), str(tmp_path / "b.idx")])
    assert [f.path for f in report.files] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert report.total["tokens"] == 2 * expected_counts(DOCS)["tokens"]


def test_scan_verify_tokens_failure_excludes_file(tmp_path):
    write_mmidx(tmp_path / "d", [[[1, 2, 50]], [[3, 0]]])
    report = scan([str(tmp_path / "d")], verify_tokens=TokenCheckOptions(vocab_size=10))
    assert report.files == []
    assert report.failures[0].check == "token ids < vocab size"
    assert report.failures[0].position == "token 2"
    report = scan([str(tmp_path / "d")], verify_tokens=TokenCheckOptions(vocab_size=51, eod=0))
    assert report.failures[0].check == "documents end in EOD"
    assert report.failures[0].position == "document 0"
    report = scan([str(tmp_path / "d")], verify_tokens=TokenCheckOptions(vocab_size=51))
    assert report.ok and report.files[0].extra["token_check"]["max_token_id"] == 50


def test_window_with_a_live_view_is_left_to_close_on_release(tmp_path):
    """An array still pointing into a window must not fail the scan (BufferError on close):
    the mapping then closes when the last view is released."""
    import mmap

    from tokcount.formats.indexed import map_window

    path = tmp_path / "w.bin"
    path.write_bytes(bytes(range(256)) * 64)
    with open(path, "rb") as f:
        with map_window(f, str(path), 4096, 1024) as (window, delta):
            kept = np.frombuffer(window, dtype=np.uint8, count=16, offset=delta)
        assert kept.tolist() == list(range(16)) and not window.closed  # still readable, still mapped
        del kept
        window.close()  # the last view is gone: closing works now
    assert window.closed and isinstance(window, mmap.mmap)
