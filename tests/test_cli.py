from conftest import ROOT, kaggle_dir

from medchat.cli import main


def test_check_data_accepts_embedded_and_kaggle(capsys):
    rules = str(ROOT / "data" / "safety" / "rules.yaml")
    assert main(["check-data", str(ROOT / "data" / "raw"), "--rules", rules]) == 0
    assert "317 rows, 317 unique symptom sets, 41 diseases" in capsys.readouterr().out
    assert main(["check-data", str(kaggle_dir("headerless")), "--rules", rules]) == 0
    assert "4920 rows, 304 unique symptom sets" in capsys.readouterr().out


def test_check_data_reports_bad_folder(tmp_path, capsys):
    assert main(["check-data", str(tmp_path), "--rules", str(ROOT / "data" / "safety" / "rules.yaml")]) == 1
    assert "Symptom-severity.csv: file not found" in capsys.readouterr().err
