"""Dataset ingestion and `study init`: every bad input is reported, with the file and what to
do, and nothing is written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_ebb, photo, write_image
from study import store
from study.dataset import discover, id_sort_key, load_depth, load_rgb, validate_pairs


def assert_nothing_written(target: Path) -> None:
    assert not target.exists(), f"{target} was created although init failed"
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert not leftovers, f"staging folders left behind: {leftovers}"


def init_fails(run_cli, tmp_path: Path, dataset: Path, *extra: str) -> str:
    target = tmp_path / "new-study"
    result = run_cli("init", target, "--dataset", dataset, *extra, expect=2)
    assert "Traceback" not in result.output
    assert_nothing_written(target)
    return result.output


def test_init_then_status_lists_images_in_numeric_order(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=(10, 2, 1), depth=True)
    target = tmp_path / "s"
    run_cli("init", target, "--dataset", ds)
    status = json.loads(run_cli("status", "--json", cwd=target).stdout)
    assert [i["image_id"] for i in status["dataset"]["images"]] == ["1", "2", "10"]
    assert all(i["has_depth"] for i in status["dataset"]["images"])
    assert status["next"] == "study render"
    # from a sub-folder, like git
    sub = target / "renders" / "x"
    sub.mkdir(parents=True)
    assert json.loads(run_cli("status", "--json", cwd=sub).stdout)["study"] == "s"
    # with --study from elsewhere
    assert json.loads(run_cli("--study", target, "status", "--json", cwd=tmp_path).stdout)


def test_study_toml_has_every_setting_commented(study_dir):
    text = (study_dir / "study.toml").read_text()
    for section in ("[study]", "[dataset]", "[render]", "[methods.scatter]", "[design]", "[hit]",
                    "[hit.requirements]", "[marketplace]", "[hosting]", "[budget]", "[quality]",
                    "[report]", "[serve]"):
        assert section in text
    assert text.count("\n#") > 30
    assert 'endpoint = "embedded"' in text


def test_db_is_wal_with_foreign_keys_and_schema_version(study_dir):
    from study import store
    conn = store.connect(study_dir / "study.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.schema_version(conn) == store.SCHEMA_VERSION
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 3


def test_init_refuses_to_overwrite_a_study(study_dir, ebb_dataset, run_cli):
    before = (study_dir / "study.toml").read_text()
    result = run_cli("init", study_dir, "--dataset", ebb_dataset, expect=2)
    assert "already holds a study" in result.output
    assert (study_dir / "study.toml").read_text() == before


def test_outside_a_study_says_so(tmp_path, run_cli):
    result = run_cli("status", cwd=tmp_path, expect=2)
    assert "not inside a study folder" in result.output
    assert "Traceback" not in result.output


def test_selection_is_seeded_and_by_id(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=range(1, 16))
    run_cli("init", tmp_path / "a", "--dataset", ds, "--images", "4", "--seed", "7")
    run_cli("init", tmp_path / "b", "--dataset", ds, "--images", "4", "--seed", "7")
    ids = lambda d: [i["image_id"] for i in json.loads(
        run_cli("status", "--json", cwd=d).stdout)["dataset"]["images"]]
    assert ids(tmp_path / "a") == ids(tmp_path / "b")
    assert len(ids(tmp_path / "a")) == 4
    run_cli("init", tmp_path / "c", "--dataset", ds, "--image-ids", "12,3")
    assert ids(tmp_path / "c") == ["3", "12"]
    # the paper's default: 10 images
    run_cli("init", tmp_path / "d", "--dataset", ds)
    assert len(ids(tmp_path / "d")) == 10
    out = init_fails(run_cli, tmp_path, ds, "--image-ids", "3,99")
    assert "99" in out


def test_missing_partner_is_reported(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=(1, 2, 3))
    (ds / "test" / "bokeh" / "2.jpg").unlink()
    (ds / "test" / "original" / "3.jpg").unlink()
    out = init_fails(run_cli, tmp_path, ds, "--image-ids", "1,2,3")
    assert "'2' has an input but no reference" in out
    assert "'3' has a reference but no input" in out


def test_every_problem_is_reported_in_one_run(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=(1, 2, 3, 4, 5, 6), depth=True)
    base = ds / "test"
    # truncated JPEG
    data = (base / "original" / "1.jpg").read_bytes()
    (base / "original" / "1.jpg").write_bytes(data[: len(data) // 2])
    # not an image at all
    (base / "bokeh" / "2.jpg").write_bytes(b"this is not a jpeg")
    # size mismatch
    write_image(base / "bokeh" / "3.jpg", photo(40, 64))
    # depth size mismatch
    write_image(base / "original_depth" / "4.png", np.zeros((10, 10), np.uint8))
    # duplicate id: 5.jpg and 5.png
    write_image(base / "original" / "5.png", photo(48, 64))
    out = init_fails(run_cli, tmp_path, ds)
    assert "1.jpg is truncated or corrupt" in out
    assert "cannot read 2.jpg" in out
    assert "input is 64x48 but reference is 64x40" in out
    assert "depth map is 10x10 but the input is 64x48" in out
    assert "duplicate image id '5'" in out
    assert str(base / "original") in out  # where
    assert "fix:" in out

    check = run_cli("dataset", "check", ds, expect=2)
    assert "5 problem(s)" in check.output or "problem" in check.output


def test_pixel_limit_refuses_decompression_bombs(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=(1,))
    result = run_cli("dataset", "check", ds, "--max-pixels", "1000", expect=2)
    assert "above the limit of 1,000" in result.output
    assert "decompression bomb" in result.output


def test_conversions_to_rgb8_come_with_a_notice(tmp_path, run_cli):
    ds = tmp_path / "ebb"
    base = ds / "test"
    rgb = photo(48, 64)
    grey = rgb[..., 0]
    write_image(base / "original" / "1.png", grey)
    write_image(base / "bokeh" / "1.png", grey)
    pal = Image.fromarray(rgb).convert("P")
    write_image(base / "original" / "2.png", rgb)
    base.joinpath("bokeh").mkdir(parents=True, exist_ok=True)
    pal.save(base / "bokeh" / "2.png")
    Image.fromarray(rgb).convert("CMYK").save(base / "original" / "3.jpg")
    write_image(base / "bokeh" / "3.jpg", rgb)
    sixteen = (grey.astype(np.uint16) * 257)
    Image.fromarray(sixteen).save(base / "original" / "4.png")
    write_image(base / "bokeh" / "4.png", rgb)
    result = run_cli("init", tmp_path / "s", "--dataset", ds)
    for word in ("grayscale converted", "palette converted", "CMYK converted",
                 "16-bit grayscale converted"):
        assert word in result.output
    for i in "1234":
        arr = load_rgb(base / ("original" if i != "2" else "bokeh") /
                       next(p.name for p in (base / ("original" if i != "2" else "bokeh")).iterdir()
                            if p.stem == i))
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


def test_exif_orientation_is_applied(tmp_path, run_cli):
    ds = tmp_path / "ebb"
    base = ds / "test"
    img = Image.fromarray(photo(48, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    (base / "original").mkdir(parents=True)
    img.save(base / "original" / "1.jpg", exif=exif.tobytes())
    write_image(base / "bokeh" / "1.jpg", np.asarray(img.rotate(-90, expand=True)))
    target = tmp_path / "s"
    result = run_cli("init", target, "--dataset", ds)
    assert "EXIF orientation 6 applied" in result.output
    assert load_rgb(base / "original" / "1.jpg").shape == (64, 48, 3)
    info = json.loads(run_cli("status", "--json", cwd=target).stdout)["dataset"]["images"][0]
    assert (info["width"], info["height"]) == (48, 64)


def test_aim2020_inputs_only_folders_are_reported_not_used(tmp_path, run_cli):
    root = tmp_path / "aim2020"
    make_ebb(root, ids=(1, 2), split="Training")
    for folder in ("ValidationBokehFree", "TestBokehFree"):
        write_image(root / folder / "original" / "0.jpg", photo(48, 64))
    ds = discover(root)
    assert ds.layout == "aim2020" and ds.split == "Training"
    result = run_cli("init", tmp_path / "s", "--dataset", root)
    assert "TestBokehFree/ holds inputs only" in result.output
    out = init_fails(run_cli, tmp_path, root, "--split", "TestBokehFree")
    assert "inputs only" in out and "needs references" in out


def test_several_splits_ask_for_one(tmp_path, run_cli):
    root = tmp_path / "ebb"
    make_ebb(root, ids=(1,), split="train")
    make_ebb(root, ids=(1,), split="test")
    out = init_fails(run_cli, tmp_path, root)
    assert "--split" in out
    run_cli("init", tmp_path / "s", "--dataset", root, "--split", "test")


def test_manifest_csv_with_relative_paths_and_errors(tmp_path, run_cli):
    d = tmp_path / "files"
    for i in (1, 2):
        write_image(d / f"in{i}.png", photo(32, 40, i))
        write_image(d / f"ref{i}.png", photo(32, 40, i))
    write_image(d / "depth1.png", np.zeros((32, 40), np.uint8))
    manifest = d / "pairs.csv"
    manifest.write_text("image_id,input,reference,depth\n"
                        "2,in2.png,ref2.png,\n1,in1.png,ref1.png,depth1.png\n")
    target = tmp_path / "s"
    run_cli("init", target, "--dataset", manifest)
    ids = [i["image_id"] for i in json.loads(
        run_cli("status", "--json", cwd=target).stdout)["dataset"]["images"]]
    assert ids == ["1", "2"]

    bad = d / "bad.csv"
    bad.write_text("image_id,input,reference\n1,in1.png,ref1.png\n1,in2.png,ref2.png\n"
                   "3,missing.png,ref2.png\n")
    out = init_fails(run_cli, tmp_path, bad)
    assert "duplicate image id '1'" in out and "bad.csv:3" in out
    assert "file not found" in out and "missing.png" in out

    nohead = d / "nohead.csv"
    nohead.write_text("id,a,b\n1,in1.png,ref1.png\n")
    assert "lacks column(s) image_id, input, reference" in init_fails(run_cli, tmp_path, nohead)


def test_not_a_dataset(tmp_path, run_cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "does not look like an EBB!-style dataset" in init_fails(run_cli, tmp_path, empty)
    assert "dataset not found" in init_fails(run_cli, tmp_path, tmp_path / "nope")


def test_widths_vary_and_ids_sort_numerically(tmp_path):
    root = tmp_path / "ebb"
    write_image(root / "original" / "1.jpg", photo(64, 90))
    write_image(root / "bokeh" / "1.jpg", photo(64, 90))
    write_image(root / "original" / "2.jpg", photo(64, 70))
    write_image(root / "bokeh" / "2.jpg", photo(64, 70))
    rows, problems = validate_pairs(discover(root))
    assert not problems
    assert [(r.width, r.height) for r in rows] == [(90, 64), (70, 64)]
    assert sorted(["10", "2", "1", "a"], key=id_sort_key) == ["1", "2", "10", "a"]


def test_depth_maps_load_normalised(tmp_path):
    p = write_image(tmp_path / "d.png", (np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000))
    d = load_depth(p)
    assert d.dtype == np.float32 and d.min() == 0.0 and d.max() == 1.0


def test_init_lists_the_problems_dataset_check_lists(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=tuple(range(1, 13)))
    (ds / "test" / "bokeh" / "2.jpg").unlink()
    (ds / "test" / "original" / "3.jpg").write_bytes(b"not a jpeg")
    check = run_cli("dataset", "check", ds, expect=None).output
    init = init_fails(run_cli, tmp_path, ds)
    for needle in ("'2' has an input but no reference", "3.jpg"):
        assert needle in check and needle in init


def test_init_says_when_it_chose_a_subset(tmp_path, run_cli):
    ds = make_ebb(tmp_path / "ebb", ids=tuple(range(1, 13)))
    out = run_cli("init", tmp_path / "s", "--dataset", ds).output
    assert "10 of the dataset's 12 complete pairs were chosen at random (seed 0)" in out


def test_a_first_schema_database_moves_forward_keeping_its_items(tmp_path):
    """Schema step 2 rebuilds `items` (new kinds, a second output); every item_id, the HIT
    positions and the ratings that point at them survive, and foreign keys hold again."""
    path = tmp_path / "study.db"
    old = sqlite3.connect(path)
    old.executescript(store.MIGRATIONS[0])
    old.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (1);"
        "INSERT INTO images VALUES ('im1', 0, 'in.png', 'ref.png', NULL, 4, 4, 'a', 'b', '');"
        "INSERT INTO items (item_id, image_id, method, kind, reference_path, result_path) "
        "VALUES (7, 'im1', 'blur', 'test', 'ref.png', 'out.png');"
        "INSERT INTO hit_items VALUES (0, 1, 7, '');"
        "INSERT INTO assignments (assignment_id, realm, hit_id, hit_index, worker_id, status) "
        "VALUES ('A1', 'sandbox', 'H1', 0, 'W1', 'Submitted');"
        "INSERT INTO ratings (assignment_id, position, item_id, worker_id, score, valid) "
        "VALUES ('A1', 1, 7, 'W1', 2, 1);")
    old.commit()
    old.close()
    conn = store.connect(path)
    assert store.schema_version(conn) == store.SCHEMA_VERSION
    row = conn.execute("SELECT * FROM items").fetchone()
    assert (row["item_id"], row["method"], row["method_b"], row["result_b_path"]) == \
        (7, "blur", "", "")
    assert conn.execute("SELECT swapped FROM hit_items").fetchone()[0] == 0
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO ratings (assignment_id, position, item_id, worker_id, valid) "
                     "VALUES ('A1', 2, 99, 'W1', 0)")
