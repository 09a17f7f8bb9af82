"""SLURM profiles: strict loading, one error naming every problem, submitit parameters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.launch.profiles import ProfileError, SlurmProfile, load_profile, valid_keys

PROFILES = Path(__file__).resolve().parents[1] / "slurm" / "profiles"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def test_local_profile_executor_parameters() -> None:
    profile = load_profile(PROFILES / "local.yaml")
    assert profile.executor_parameters() == {
        "timeout_min": 30,
        "cpus_per_task": 1,
        "mem_gb": 2.0,
        "slurm_partition": "debug",
        "slurm_array_parallelism": 2,
        "slurm_signal_delay_s": 60,
    }
    assert profile.max_num_timeout == 3


def test_gpu_example_profile_executor_parameters() -> None:
    profile = load_profile(PROFILES / "gpu-example.yaml")
    assert profile.executor_parameters() == {
        "timeout_min": 240,
        "cpus_per_task": 8,
        "gpus_per_node": 1,
        "mem_gb": 32.0,
        "slurm_partition": "gpu",
        "slurm_account": "my-lab",
        "slurm_qos": "normal",
        "slurm_constraint": "a100|h100",
        "slurm_array_parallelism": 64,
        "slurm_signal_delay_s": 120,
        "slurm_additional_parameters": {"mail-type": "FAIL", "requeue": True},
        "slurm_setup": ["module purge", "module load cuda/12.4", "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK}"],
    }
    assert profile.max_num_timeout == 5


def test_every_shipped_profile_loads() -> None:
    names = sorted(path.name for path in PROFILES.glob("*.yaml"))
    assert names == ["gpu-example.yaml", "local.yaml"]
    for path in PROFILES.glob("*.yaml"):
        assert isinstance(load_profile(path), SlurmProfile)


def test_executor_parameters_are_accepted_by_submitit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's AutoExecutor takes every key, and its sbatch file carries each setting."""
    submitit = pytest.importorskip("submitit")
    # let the SLURM executor be built on a machine without srun; nothing is submitted
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(**load_profile(PROFILES / "gpu-example.yaml").executor_parameters())
    script = executor._executor._make_submission_file_text("python -m job", "uid").splitlines()
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=my-lab",
        "#SBATCH --qos=normal",
        "#SBATCH --constraint='a100|h100'",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --mail-type=FAIL",
        "#SBATCH --requeue",
        "module purge",
        "module load cuda/12.4",
    ]:
        assert line in script, line


def test_zero_gpus_writes_no_gpu_request() -> None:
    assert "gpus_per_node" not in SlurmProfile(gpus_per_node=0).executor_parameters()
    assert SlurmProfile().executor_parameters() == {
        "timeout_min": 60,
        "cpus_per_task": 1,
        "slurm_array_parallelism": 256,
        "slurm_signal_delay_s": 90,
    }


def test_sbatch_options_accept_flags_values_and_full_lines() -> None:
    profile = SlurmProfile(extra_sbatch=("--exclusive", "--mail-user=a@b.org", "#SBATCH --comment=two words"))
    assert profile.sbatch_options() == {"exclusive": True, "mail-user": "a@b.org", "comment": "two words"}


def test_every_problem_is_reported_at_once_with_line_value_and_choices(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "partition: debug\n"
        "gpus_per_node: -1\n"
        "mem: 4\n"
        "time_min: soon\n"
        "extra_sbatch:\n"
        "  - --exclusive\n"
        "  - -N 2\n"
        "  - --partition=other\n"
        "setup: module load cuda\n"
        "partition: gpu\n",
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(caught.value) == "\n".join(
        [
            f"{path}: 7 problems in SLURM profile",
            "  line 2: gpus_per_node: Input should be greater than or equal to 0 (got -1)",
            "  line 3: mem: unknown key (did you mean 'mem_gb'?); valid keys: " + ", ".join(sorted(valid_keys())),
            "  line 4: time_min: Input should be a valid integer, unable to parse string as an integer (got 'soon')",
            "  line 7: extra_sbatch[1]: not an sbatch long option; write '--name=value' or '--flag' "
            "(e.g. '--mail-type=END', '--exclusive') (got '-N 2')",
            "  line 8: extra_sbatch[2]: --partition is set by the `partition` key (got '--partition=other')",
            "  line 9: setup: Input should be a list (got 'module load cuda')",
            "  line 10: partition: duplicate key, first set on line 1",
        ]
    )


def test_profile_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError,
                       match=r"line 1: cpus_per_task: Input should be greater than or equal to 1 \(got 0\)"):
        load_profile(write(tmp_path, "cpus_per_task: 0\n"))


def test_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    expected = re.escape("line 2: gpus: unknown key (did you mean 'gpus_per_node'?); "
                         "valid keys: account, array_parallelism, ")
    with pytest.raises(ProfileError, match=expected):
        load_profile(write(tmp_path, "partition: debug\ngpus: 2\n"))


def test_signal_must_come_before_the_time_limit(tmp_path: Path) -> None:
    with pytest.raises(
        ProfileError,
        match=re.escape("line 2: signal_delay_s: must be shorter than time_min (1 min = 60 s), "
                        "or the requeue signal comes as the job starts (got 90)"),
    ):
        load_profile(write(tmp_path, "time_min: 1\nsignal_delay_s: 90\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- partition\n", "a profile is a mapping of keys to values, got list; valid keys: partition, account"),
        ("partition: [debug\n", "not valid YAML"),
        ("mem_gb: -2\n", "line 1: mem_gb: Input should be greater than 0 (got -2)"),
        ("extra_sbatch:\n  - --time=5\n", "line 2: extra_sbatch[0]: --time is set by the `time_min` key"),
        ("extra_sbatch:\n  - --signal=B:USR1@60\n", "--signal is set by the `signal_delay_s` key"),
        ("extra_sbatch:\n  - 3\n", "line 2: extra_sbatch[0]: Input should be a valid string (got 3)"),
        ("partition: ''\n", "line 1: partition: String should have at least 1 character (got '')"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        load_profile(write(tmp_path, text))


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProfileError, match=re.escape(f"{missing}: cannot read profile: No such file or directory")):
        load_profile(missing)


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    assert load_profile(write(tmp_path, "# nothing set\n")) == SlurmProfile()


def test_profiles_are_frozen() -> None:
    profile = SlurmProfile()
    with pytest.raises(ValueError, match="frozen"):
        profile.time_min = 5  # type: ignore[misc]
