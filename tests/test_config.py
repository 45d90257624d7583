"""Config loading: every problem reported as FILE:LINE: key: message, exit 78 from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcalld.cli import vcalld_main
from vcalld.config import EX_CONFIG, ConfigError, load_config
from vcalld.config.locate import key_lines

EXAMPLE = Path(__file__).parent.parent / "config" / "vcalld.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vcalld.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


def test_example_file_is_valid_and_summarised(capsys: pytest.CaptureFixture[str]) -> None:
    assert vcalld_main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith(f"{EXAMPLE}: ok: device ")


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, '[device]\nid = "k1"\n\n[call]\nroom = "lobby"\nauto_joyn = true\n')
    assert problems(path) == [
        f'{path}:6: call.auto_joyn: unknown key (did you mean "auto_join"?)',
    ]


def test_wrong_type_names_line_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[video]\nfps = 30\nwidth = "wide"\n')
    assert problems(path) == [
        f"{path}:3: video.width: input should be a valid integer, unable to parse string as an "
        'integer, got "wide"',
    ]


def test_bad_toml_syntax_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[call]\nroom = "lobby"\nserver_url = ws://x\n')
    assert problems(path) == [f"{path}:3: syntax: Invalid value (column 14)"]


def test_all_problems_reported_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport = 70000\n[audio]\nchannels = 3\n[nope]\nx = 1\n")
    assert [p.split(": ")[0:2] for p in problems(path)] == [
        [f"{path}:2", "mqtt.port"],
        [f"{path}:4", "audio.channels"],
        [f"{path}:5", "nope"],
    ]


def test_array_of_tables_entry_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[call.ice_servers]]\nurls = ["stun:a"]\n\n[[call.ice_servers]]\nurls = []\n',
    )
    assert problems(path) == [
        f"{path}:5: call.ice_servers[1].urls: list should have at least 1 item after "
        "validation, not 0, got []",
    ]


def test_environment_override_and_its_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[call]\nroom = "lobby"\n')
    monkeypatch.setenv("VCALLD_CALL__ROOM", "hall")
    assert load_config(path).call.room == "hall"
    monkeypatch.setenv("VCALLD_MQTT__PORT", "99999")
    monkeypatch.setenv("VCALLD_CAL__ROOM", "x")
    assert problems(path) == [
        'environment VCALLD_CAL__ROOM: cal: unknown section (did you mean "call"?)',
        "environment VCALLD_MQTT__PORT: mqtt.port: input should be less than or equal to "
        '65535, got "99999"',
    ]


@pytest.mark.parametrize("action", ["check-config", "run"])
def test_cli_exits_78_with_exact_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    path = write(tmp_path, "[video]\nwidht = 640\n")
    argv = (
        ["check-config", str(path)] if action == "check-config" else ["run", "--config", str(path)]
    )
    assert vcalld_main(argv) == EX_CONFIG
    outcome = "; not starting" if action == "run" else ""
    assert capsys.readouterr().err == (
        f'{path}:2: video.widht: unknown key (did you mean "width"?)\n'
        f"vcalld: 1 error in {path}{outcome}\n"
    )


def test_plugins_must_be_installed_and_of_the_right_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[video]\nsource = "webcam"\n[audio]\nsource = "test-pattern"\n'
        '[display]\nrenderer = "hdmi"\n',
    )
    assert problems(path) == [
        f"{path}:2: video.source: no source 'webcam' is installed "
        '(installed: alsa, camera, file, screen, test-pattern, tone), got "webcam"',
        f"{path}:4: audio.source: 'test-pattern' is a video source, not audio, "
        'got "test-pattern"',
        f"{path}:6: display.renderer: no renderer 'hdmi' is installed "
        '(installed: display, recorder, stats), got "hdmi"',
    ]


def test_camera_keys_name_the_control_and_what_it_takes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[video]\nsource = "camera"\ncamera_format = "rgb"\n\n[video.controls]\n'
        'brightness = 1.5\nZoom = 3\npower_line_frequency = "50 Hz"\n',
    )
    assert problems(path) == [
        f"{path}:3: video.camera_format: input should be 'auto', 'mjpeg', 'yuyv', 'nv12', "
        "'h264' or 'h264-passthrough', got \"rgb\"",
        f"{path}:6: video.controls.brightness: a control takes an integer, true or false, or a "
        "menu entry's label, got 1.5",
        f"{path}:7: video.controls.Zoom: a control's name is lower case, as `vcalld devices` "
        'lists it, got "Zoom"',
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert problems(path) == [f"{path}: file: cannot read: No such file or directory"]


def test_key_lines_skip_multiline_values() -> None:
    text = '[a]\nlist = [\n  "x = 1",\n]\nb = 2\n[c.d]\n"e.f" = 3\n'
    lines = key_lines(text)
    assert lines[("a", "b")] == 5
    assert ("a", "x") not in lines
    assert lines[("c", "d", "e.f")] == 7


def test_janus_backend_is_summarised_and_its_secrets_stay_hidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[call]\nbackend = "janus"\nroom = "1234"\n[call.janus]\n'
        'urls = ["wss://janus.example.org/ws", "https://janus.example.org/janus"]\n'
        'token = "t0ken"\napi_secret = "s3cret"\nroom_pin = "2468"\n',
    )
    assert vcalld_main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "room 1234 at Janus wss://janus.example.org/ws or https://janus" in out
    config = load_config(path)
    assert config.call.janus.token is not None
    assert config.call.janus.token.get_secret_value() == "t0ken"
    shown = repr(config) + str(config.model_dump())
    assert not {"t0ken", "s3cret", "2468"} & set(shown.replace("'", " ").split()), shown


def test_janus_url_scheme_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, '[call.janus]\nurls = ["ftp://janus"]\n')
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:2: call.janus.urls[0]: string should match"), problem
