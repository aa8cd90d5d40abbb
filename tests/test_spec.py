"""Benchmark specs: shipped YAMLs load, typos fail naming file and field, include, hash, paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from evalsuite.data.items import Item
from evalsuite.errors import SpecError
from evalsuite.registry import Registry, RegistryError
from evalsuite.spec import DEFAULT_BENCHMARKS_DIR, list_benchmarks, load_benchmark, spec_hash
from evalsuite.spec_data import resolve_dataset, resolve_dataset_path, task_skip_reason
from evalsuite.spec_tasks import ZeroShotTask

SHIPPED = [
    "catalogue",
    "custom",
    "deepfashion",
    "demo_footwear",
    "demo_general",
    "fmnist",
    "footwear",
]

BASE = """\
name: {name}
version: 1
dataset:
  reader: labelled_csv
  path: mydata
  path_env: EVALSUITE_TEST_DIR
tasks:
  - type: zeroshot
    name: label
    field: label
    templates: ["a photo of a {{}}."]
  - type: text_to_image
    name: search
    queries: queries.jsonl
"""
QUERY = '{"id": "q1", "text": "red shoes", "where": {"label": "red"}}\n'


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    """A benchmarks folder holding one valid benchmark, `toy`."""
    write(tmp_path, "toy/toy.yaml", BASE.format(name="toy"))
    write(tmp_path, "toy/queries.jsonl", QUERY)
    return tmp_path


def item(item_id: str, **fields: str) -> Item:
    return Item(id=item_id, fields=fields, pixels=np.zeros((2, 2), np.uint8))


# --- registry ------------------------------------------------------------------------------


def test_registry_duplicates_raise_and_misses_suggest() -> None:
    registry = Registry[int]("widget")
    registry.register("catalogue", 1)

    @registry.register("fashion_mnist")
    def reader() -> int:
        return 2

    assert registry.get("catalogue") == 1 and "fashion_mnist" in registry
    assert registry.names() == ["catalogue", "fashion_mnist"] and len(registry) == 2
    with pytest.raises(ValueError, match="already registered"):
        registry.register("catalogue", 3)
    with pytest.raises(RegistryError, match=r"unknown widget 'catalog' \(did you mean 'catalogue'"):
        registry.get("catalog")
    assert isinstance(RegistryError("x"), LookupError)


def test_registry_keeps_registration_order_and_copies_apart() -> None:
    registry = Registry[int]("widget", miss_message=lambda name, known: f"no {name}; {known}")
    registry.register("b", 1)
    registry.register("a", 2)
    assert registry.values() == [1, 2] and registry.names() == ["a", "b"]
    twin = registry.copy()
    twin.register("c", 3)
    assert "c" not in registry and twin.values() == [1, 2, 3]
    with pytest.raises(RegistryError, match=r"no z; \['a', 'b'\]"):
        registry.get("z")


# --- shipped benchmarks --------------------------------------------------------------------


def test_shipped_benchmarks_load() -> None:
    assert list_benchmarks() == SHIPPED
    for name in SHIPPED:
        spec = load_benchmark(name)
        assert spec.name == name and spec.source == DEFAULT_BENCHMARKS_DIR / name / f"{name}.yaml"
        assert (spec.source.parent / "README.md").is_file()
        assert len(spec_hash(spec)) == 64


def test_footwear_tasks_and_query_counts() -> None:
    spec = load_benchmark("footwear")
    assert [t.name for t in spec.tasks] == [
        "article_type",
        "base_colour",
        "lace_colour",
        "text_search",
        "image_search",
        "lace_search",
        "lace_image_search",
        "knn_article_type",
    ]
    assert (spec.dataset.reader, spec.dataset.split) == ("catalogue", "test")
    assert spec.dataset.path_env == "EVALSUITE_FOOTWEAR_DIR"
    assert spec.task("lace_colour").when_field_present
    assert len(spec.query_set(spec.task("text_search")).queries) == 39
    assert len(spec.query_set(spec.task("image_search")).queries) == 13
    for name, kind, count in (("lace_search", "text", 39), ("lace_image_search", "image", 13)):
        lace = spec.query_set(spec.task(name))
        assert (lace.kind, len(lace.queries)) == (kind, count)
        assert lace.header.requires_field == ["lace_colour"] == spec.task(name).requires_field


def test_fmnist_classes_are_the_ten_official_names() -> None:
    task = load_benchmark("fmnist").task("label")
    assert list(task.classes) == [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    assert "a black and white photo of a sneaker." in task.prompts(task.classes["Sneaker"])


def test_unknown_benchmark_suggests(bench_dir: Path) -> None:
    with pytest.raises(SpecError, match=r"'tyo' \(did you mean 'toy'\?\)"):
        load_benchmark("tyo", bench_dir)
    assert list_benchmarks(bench_dir) == ["toy"]


def test_benchmarks_dir_from_env(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench_dir))
    assert list_benchmarks() == ["toy"]
    assert load_benchmark("toy").name == "toy"


# --- validation errors ---------------------------------------------------------------------


def load_variant(folder: Path, old: str, new: str, name: str = "toy") -> None:
    text = BASE.format(name=name)
    assert old in text
    write(folder, f"{name}/{name}.yaml", text.replace(old, new))
    load_benchmark(name, folder)


def test_typo_in_field_names_file_and_path(bench_dir: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_variant(bench_dir, "    templates:", "    templatess:")
    assert str(err.value) == (
        f"{bench_dir / 'toy/toy.yaml'}: tasks[0].templatess: unknown field "
        "(did you mean 'templates'?)"
    )
    with pytest.raises(SpecError, match=r"dataset\.pth: unknown field \(did you mean 'path'"):
        load_variant(bench_dir, "  path: mydata", "  pth: mydata")


def test_wrong_types_and_values(bench_dir: Path) -> None:
    with pytest.raises(SpecError, match=r"version: expected int or str \(got \[1\]\)"):
        load_variant(bench_dir, "version: 1", "version: [1]")
    with pytest.raises(SpecError, match=r"tasks\[1\]\.type: unknown type 'text_to_imag' \(did"):
        load_variant(bench_dir, "type: text_to_image", "type: text_to_imag")
    with pytest.raises(SpecError, match=r"tasks\[0\]\.templates: template 'no slot' needs"):
        load_variant(bench_dir, '["a photo of a {}."]', '["no slot"]')
    with pytest.raises(SpecError, match=r"tasks\[1\]\.k: .*greater than or equal to 1"):
        load_variant(bench_dir, "queries: queries.jsonl", "queries: queries.jsonl\n    k: 0")
    with pytest.raises(SpecError, match="image_policy"):
        load_variant(bench_dir, "tasks:", "image_policy: ignore\ntasks:")
    with pytest.raises(SpecError, match="task names must be unique: label"):
        load_variant(bench_dir, "name: search", "name: label")


def test_name_must_equal_stem_and_query_file_must_exist(bench_dir: Path) -> None:
    write(bench_dir, "toy/toy.yaml", BASE.format(name="other"))
    with pytest.raises(SpecError, match="name: 'other' must equal the file stem 'toy'"):
        load_benchmark("toy", bench_dir)
    with pytest.raises(SpecError, match="cannot read query file"):
        load_variant(bench_dir, "queries.jsonl", "missing.jsonl")


def test_query_kind_must_match_task_type(bench_dir: Path) -> None:
    with pytest.raises(SpecError, match="image_to_image needs image queries"):
        load_variant(bench_dir, "type: text_to_image", "type: image_to_image")


def test_invalid_yaml_names_file(bench_dir: Path) -> None:
    write(bench_dir, "toy/toy.yaml", "name: [unclosed\n")
    with pytest.raises(SpecError, match=r"toy\.yaml: invalid YAML"):
        load_benchmark("toy", bench_dir)


# --- include -------------------------------------------------------------------------------


def test_include_overrides_top_level_keys(bench_dir: Path) -> None:
    write(
        bench_dir,
        "toy/toy_val.yaml",
        """\
        include: toy.yaml
        name: toy_val
        version: 2
        dataset: {reader: labelled_csv, path: mydata, split: val}
        """,
    )
    spec = load_benchmark("toy_val", bench_dir)
    assert (spec.version, spec.dataset.split, spec.dataset.path_env) == (2, "val", None)
    assert [t.name for t in spec.tasks] == ["label", "search"]  # inherited
    assert spec.queries_path(spec.task("search")) == (bench_dir / "toy/queries.jsonl").resolve()
    assert load_benchmark(bench_dir / "toy/toy_val.yaml").name == "toy_val"  # by path


def test_include_replaces_task_list_and_resolves_queries_beside_it(bench_dir: Path) -> None:
    write(bench_dir, "other/queries.jsonl", QUERY.replace("red", "blue"))
    write(
        bench_dir,
        "other/other.yaml",
        """\
        include: ../toy/toy.yaml
        name: other
        tasks:
          - {type: text_to_image, name: search2, queries: queries.jsonl}
        """,
    )
    spec = load_benchmark("other", bench_dir)
    assert [t.name for t in spec.tasks] == ["search2"]
    assert spec.query_set(spec.tasks[0]).queries[0].where == {"label": "blue"}


def test_include_errors(bench_dir: Path) -> None:
    write(bench_dir, "a/a.yaml", "include: missing.yaml\nname: a\n")
    with pytest.raises(SpecError, match="include: file not found"):
        load_benchmark("a", bench_dir)
    write(bench_dir, "b/b.yaml", "include: b.yaml\nname: b\n")
    with pytest.raises(SpecError, match="include cycle"):
        load_benchmark("b", bench_dir)


# --- hash ----------------------------------------------------------------------------------


def test_spec_hash_tracks_prompts_classes_and_queries(bench_dir: Path) -> None:
    yaml_path, queries = bench_dir / "toy/toy.yaml", bench_dir / "toy/queries.jsonl"
    first = spec_hash(load_benchmark("toy", bench_dir))
    yaml_path.write_text("# a comment\n" + yaml_path.read_text())
    assert spec_hash(load_benchmark("toy", bench_dir)) == first  # formatting is not content
    yaml_path.write_text(yaml_path.read_text().replace("a photo of a", "a picture of a"))
    second = spec_hash(load_benchmark("toy", bench_dir))
    assert second != first
    queries.write_text(QUERY.replace("red shoes", "crimson shoes"))
    third = spec_hash(load_benchmark("toy", bench_dir))
    assert third != second
    yaml_path.write_text(
        yaml_path.read_text().replace("    field: label", "    field: label\n    classes: [red]")
    )
    assert spec_hash(load_benchmark("toy", bench_dir)) != third


# --- dataset location ----------------------------------------------------------------------


def test_dataset_path_precedence(
    bench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_benchmark("toy", bench_dir)
    root, env_dir, cli_dir = tmp_path / "root", tmp_path / "env", tmp_path / "cli"
    for folder in (root / "mydata", env_dir, cli_dir):
        folder.mkdir(parents=True)
    monkeypatch.delenv("EVALSUITE_TEST_DIR", raising=False)
    monkeypatch.delenv("EVALSUITE_DATA_ROOT", raising=False)
    assert resolve_dataset_path(spec, root) == root / "mydata"
    monkeypatch.setenv("EVALSUITE_DATA_ROOT", str(root))
    assert resolve_dataset_path(spec) == root / "mydata"
    monkeypatch.setenv("EVALSUITE_TEST_DIR", str(env_dir))
    assert resolve_dataset_path(spec, root) == env_dir
    assert resolve_dataset_path(spec, root, cli_dir) == cli_dir


def test_missing_dataset_path_says_how_to_pass_one(
    bench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_benchmark("toy", bench_dir)
    monkeypatch.delenv("EVALSUITE_DATA_ROOT", raising=False)
    monkeypatch.delenv("EVALSUITE_TEST_DIR", raising=False)
    with pytest.raises(SpecError) as err:
        resolve_dataset_path(spec, tmp_path / "nowhere")
    message = str(err.value)
    assert "benchmark 'toy'" in message and str(tmp_path / "nowhere" / "mydata") in message
    assert "--data-root" in message and "EVALSUITE_TEST_DIR" in message
    monkeypatch.setenv("EVALSUITE_TEST_DIR", str(tmp_path / "gone"))
    with pytest.raises(SpecError, match=r"from \$EVALSUITE_TEST_DIR\): tried .*gone"):
        resolve_dataset_path(spec, tmp_path)


def test_path_candidates_first_existing_wins(tmp_path: Path) -> None:
    spec = load_benchmark("fmnist")
    (tmp_path / "fashion-mnist-test").mkdir()
    assert resolve_dataset_path(spec, tmp_path) == tmp_path / "fashion-mnist-test"


def test_resolve_dataset_loads_items(bench_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("evalsuite.data")
    csv = tmp_path / "mydata" / "labels.csv"
    csv.parent.mkdir()
    csv.write_text("path,label\na.png,red\n")
    spec = load_benchmark("toy", bench_dir)
    dataset = resolve_dataset(spec, data_root=tmp_path)
    assert dataset.path == tmp_path / "mydata" and dataset.split is None
    write(bench_dir, "bad/bad.yaml", BASE.format(name="bad").replace("labelled_csv", "labeled_csv"))
    write(bench_dir, "bad/queries.jsonl", QUERY)
    with pytest.raises(SpecError, match=r"bad\.yaml: dataset\.reader: .*labeled_csv"):
        resolve_dataset(load_benchmark("bad", bench_dir), data_root=tmp_path)


# --- zero-shot helpers ---------------------------------------------------------------------


def test_zeroshot_class_names() -> None:
    task = ZeroShotTask(type="zeroshot", name="colour", field="c")
    labels = ["Red", "Blue", "Red", "Teal", ""]
    assert task.class_names(labels) == {"Blue": "Blue", "Red": "Red", "Teal": "Teal"}
    rare = task.model_copy(update={"min_class_count": 2})
    assert rare.class_names(labels) == {"Red": "Red"}
    mapped = task.model_copy(update={"classes": {"Red": "red", "Pink": "pink"}})
    with pytest.raises(SpecError, match="class 'Pink' has no item"):
        mapped.class_names(labels)
    assert task.prompts("red") == [t.format("red") for t in task.templates]
    assert ZeroShotTask(type="zeroshot", name="x", field="c", templates=["{c} shoe"]).prompts(
        "red"
    ) == ["red shoe"]


def test_task_skip_reasons() -> None:
    spec = load_benchmark("footwear")
    plain = [item("1", articleType="Heels", baseColour="Red")]
    assert task_skip_reason(spec, spec.task("article_type"), plain) is None
    assert "no item has field 'lace_colour'" in task_skip_reason(
        spec, spec.task("lace_colour"), plain
    )
    for name in ("lace_search", "lace_image_search"):
        assert "lace_colour" in task_skip_reason(spec, spec.task(name), plain)
        laced = [item("1", articleType="Heels", lace_colour="White")]
        assert task_skip_reason(spec, spec.task(name), laced) is None
    with pytest.raises(SpecError, match="no item has field 'baseColour'"):
        task_skip_reason(spec, spec.task("base_colour"), laced)


# (version, spec_hash) of every shipped benchmark. A change to what a benchmark computes
# (classes, prompts, queries, k...) changes its hash; stored results of the old definition
# must then not be compared with new ones as if they were alike, so the change bumps
# `version:` and records the new pair here. Display fields (labels, role, headline, gated),
# comments and description leave the hash alone (tests/test_labels.py).
SHIPPED_DEFINITIONS = {
    "catalogue": (1, "fc75da2f0efd036db2f9481af2304de7438667735f350648040b50ef6fb7e0da"),
    "custom": (1, "a1c3002705b9c1dc1dac9f48b6a9bd8db1c6ebe8c540235bf82b37df4b0701f4"),
    "deepfashion": (1, "5cf64772149711a624a608a524cb7e2439f5f8b2da8c9d7dd8bde6b679a2b972"),
    "demo_footwear": (3, "1a4776426fe59e11196b6cd28979d16e68937b2a8b0337b59443eafc6dd5094b"),
    "demo_general": (1, "d022781b700fb8ce8aa3c6a613ec5830261bb7d12e68c36c8642d594d01f4f94"),
    "fmnist": (2, "2ecd450311a305824a405d2061ef50b5812f843cd94105dd0c322d1de1be5350"),
    "footwear": (3, "9aa26213255f746ab3930990f0eef90a36ad74c3b6748f6a3e4db01c8a155e7f"),
}


def test_a_changed_benchmark_definition_bumps_its_version() -> None:
    shipped = {
        n: load_benchmark(n, DEFAULT_BENCHMARKS_DIR)
        for n in list_benchmarks(DEFAULT_BENCHMARKS_DIR)
    }
    assert set(shipped) == set(SHIPPED_DEFINITIONS), (
        "record each shipped benchmark's (version, hash) here"
    )
    for name, spec in shipped.items():
        version, recorded = SHIPPED_DEFINITIONS[name]
        if spec_hash(spec) != recorded:
            assert int(spec.version) > version, (
                f"{name}.yaml computes something else now (spec_hash changed) but its version "
                f"is still {spec.version}: bump version: and record the new pair above"
            )
            raise AssertionError(f"{name}: record ({spec.version}, {spec_hash(spec)!r})")
        assert int(spec.version) == version, f"{name}: version bumped, hash unchanged?"
