"""A disk that fills while a checkpoint is written: one clear error, the earlier
checkpoints intact, and the rerun resumes from them."""

import errno
import json
import os

from etils import epath

from bigjax import main

from conftest import checkpoint_steps

ARGS = ["--config=configs/digits_cnn.py:runlocal", "--config.checkpoint.every_steps=5",
        "--config.eval_every_steps=0"]


def test_disk_full_while_saving_is_one_error_and_the_rerun_resumes(tmp_path, monkeypatch,
                                                                   capsys):
    workdir = str(tmp_path / "run")
    write_text = epath.Path.write_text

    def full_disk_at_step_10(self, *args, **kwargs):
        if f"{os.sep}checkpoints{os.sep}10." in str(self):  # Orbax's temporary folder
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(epath.Path, "write_text", full_disk_at_step_10)
    assert main.main([*ARGS, f"--workdir={workdir}"]) == 1
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: Writing checkpoint 10 in ") and "Traceback" not in err
    assert "No space left on device; the newest complete one, 5, is intact." in line

    assert checkpoint_steps(workdir)[0] == 5

    monkeypatch.setattr(epath.Path, "write_text", write_text)  # space freed
    assert main.main([*ARGS, f"--workdir={workdir}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 20
    assert checkpoint_steps(workdir)[-1] == 20
