"""maybe_download against local stand-ins: pass-through paths, loopback HTTP, and fsspec file:// trees."""

import functools
import http.server
import threading

import pytest

from openpi.shared import download


def test_local_paths_pass_through_and_missing_is_clear(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("hi")
    assert download.maybe_download(str(f)) == f.resolve()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        download.maybe_download(str(tmp_path / "nope"))


def test_http_download_is_cached_under_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENPI_DATA_HOME", str(tmp_path / "cache"))
    root = tmp_path / "srv"
    (root / "a").mkdir(parents=True)
    (root / "a" / "w.bin").write_bytes(b"\x01\x02" * 1000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/a/w.bin"
        p = download.maybe_download(url)
        assert p == tmp_path / "cache" / f"127.0.0.1:{srv.server_port}" / "a" / "w.bin"
        assert p.read_bytes() == b"\x01\x02" * 1000
        assert not p.with_name("w.bin.partial").exists()
        (root / "a" / "w.bin").write_bytes(b"new")
        assert download.maybe_download(url).read_bytes() == b"\x01\x02" * 1000  # cached, no re-download
        assert download.maybe_download(url, force_download=True).read_bytes() == b"new"
        with pytest.raises(ConnectionError, match="Could not download"):
            download.maybe_download(f"http://127.0.0.1:{srv.server_port}/missing")
        assert not (tmp_path / "cache" / f"127.0.0.1:{srv.server_port}" / "missing").exists()
    finally:
        srv.shutdown()


def test_directory_tree_via_fsspec(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENPI_DATA_HOME", str(tmp_path / "cache"))
    src = tmp_path / "bucket" / "ckpt"
    (src / "params" / "d").mkdir(parents=True)
    (src / "params" / "d" / "x").write_text("1")
    (src / "assets").mkdir()
    (src / "assets" / "norm_stats.json").write_text("{}")
    p = download.maybe_download(f"file://{src}")
    assert (p / "params" / "d" / "x").read_text() == "1"
    assert (p / "assets" / "norm_stats.json").read_text() == "{}"
    assert str(p).startswith(str(tmp_path / "cache"))
