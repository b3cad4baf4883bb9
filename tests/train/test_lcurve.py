"""lcurve.out has DeePMD-kit's column layout (deepmd/train/trainer.py:
DPTrainer.print_header and print_on_training)."""
from deepmd_tebd.train.lcurve import LearningCurve, header, row

NAMES = ["rmse", "rmse_e", "rmse_f"]


def test_header_and_row_with_validation_have_deepmd_layout():
    # the example of DeePMD-kit's lcurve.out layout
    assert header(NAMES, True) == ("#  step      rmse_val    rmse_trn    rmse_e_val  rmse_e_trn"
                                   "    rmse_f_val  rmse_f_trn         lr\n")
    train = {"rmse": 26.0, "rmse_e": 0.0899, "rmse_f": 0.823}
    valid = {"rmse": 25.9, "rmse_e": 0.0902, "rmse_f": 0.820}
    assert row(0, train, valid, NAMES, 1e-3) == ("      0      2.59e+01    2.60e+01      9.02e-02"
                                                 "    8.99e-02      8.20e-01    8.23e-01"
                                                 "    1.0e-03\n")


def test_without_validation_only_training_columns():
    assert header(NAMES, False).split() == ["#", "step", "rmse_trn", "rmse_e_trn", "rmse_f_trn",
                                            "lr"]
    assert len(row(100, {"rmse": 1, "rmse_e": 2, "rmse_f": 3}, None, NAMES, 1e-4).split()) == 5


def test_restart_appends_with_a_new_header(tmp_path):
    path = str(tmp_path / "lcurve.out")
    first = LearningCurve(path, NAMES, False, restart=False)
    first.write(0, {"rmse": 1, "rmse_e": 2, "rmse_f": 3}, None, 1e-3)
    first.close()
    again = LearningCurve(path, NAMES, False, restart=True)
    again.write(100, {"rmse": 1, "rmse_e": 2, "rmse_f": 3}, None, 1e-3)
    again.close()
    lines = open(path).read().splitlines()
    assert [line.startswith("#") for line in lines] == [True, False, True, False]
    fresh = LearningCurve(path, NAMES, False, restart=False)
    fresh.close()
    assert len(open(path).read().splitlines()) == 1
