"""The input script is read in one place: outside deepmd_tebd/config/, no module indexes a dict
with a key of the input-script schema; everything downstream takes config/objects.py's settings."""
import re
from pathlib import Path

from deepmd_tebd.config import schema as S

PACKAGE = Path(__file__).resolve().parents[2] / "deepmd_tebd"

# Schema keys that are also the names of batch arrays (data/data_system.py's batches): `type` is
# the atom types of a batch, `atom_ener` the atomic-energy label. Reading them from a batch is not
# reading the script.
BATCH_KEYS = {"type", "atom_ener"}
# Dicts of the package's own that share a key with the schema, by module and key
OWN_KEYS = {
    ("data/data_system.py", "systems"),  # the sampling state's per-system list (checkpoints)
    ("model/energy_model.py", "type_embedding"),  # the model's output of the embedding table
}


def schema_keys() -> set:
    """Every key (and alias) the schema declares, in every section and variant."""
    keys = set()

    def walk(node):
        if not isinstance(node, dict):
            return
        for key, sub in node.get("properties", {}).items():
            keys.add(key)
            keys.update(sub.get("x-alias", []))
            walk(sub)

    walk(S.ROOT)
    for variants in S.VARIANTS.values():
        for section in variants.values():
            walk(section)
    return keys


def raw_key_reads(text: str, keys: set) -> list:
    """`x["key"]`, `x.get("key"` and `x.pop("key"` for script keys in `text` (line numbers)."""
    names = "|".join(sorted(re.escape(k) for k in keys))
    pattern = re.compile(rf"""(\[\s*|\.(?:get|pop|setdefault)\(\s*)["']({names})["']""")
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in pattern.finditer(line):
            found.append((number, match.group(2)))
    return found


def test_the_schema_declares_the_keys_this_check_looks_for():
    keys = schema_keys()
    assert {"model", "descriptor", "rcut", "numb_steps", "start_pref_e", "n_neuron"} <= keys


def test_no_module_outside_config_reads_raw_script_keys():
    keys = schema_keys() - BATCH_KEYS
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "config" in path.relative_to(PACKAGE).parts[:1]:
            continue
        module = path.relative_to(PACKAGE).as_posix()
        for number, key in raw_key_reads(path.read_text(), keys):
            if (module, key) in OWN_KEYS:
                continue
            offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {key!r}")
    assert offenders == []


def test_the_check_finds_a_raw_read():
    keys = schema_keys()
    text = 'x = config["training"]["numb_steps"]\ny = section.get("rcut", 6.0)\nz = batch["coord"]'
    assert raw_key_reads(text, keys) == [(1, "training"), (1, "numb_steps"), (2, "rcut")]
