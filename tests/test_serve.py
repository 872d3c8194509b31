"""Serving: the prediction API (in process), the command line, and the page in a real browser."""

import io
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import metrics_of
from PIL import Image, ImageDraw
from test_predict import mnist_test_images, png_claiming

from mnist_hydra.data.digits import load_digit


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def vertical_stroke() -> bytes:
    """A 1 as a person draws it: one black stroke on white."""
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).line([(100, 30), (100, 170)], fill=0, width=14)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def classifier(trained_run):
    from mnist_hydra.serving.classifier import Classifier

    return Classifier(trained_run)


@pytest.fixture(scope="module")
def client(classifier):
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.app import create_app

    return TestClient(create_app(classifier, max_bytes=200_000))


def test_health_and_model_describe_the_run(client, trained_run):

    assert client.get("/health").json() == {"status": "ok", "run": str(trained_run)}
    described = client.get("/model").json()
    record = metrics_of(trained_run)
    assert described["class_names"] == [str(d) for d in range(10)]
    assert described["dataset"] == "mnist"
    assert described["test_accuracy"] == record["test_accuracy"]
    assert described["image_shape"] == [28, 28, 1]


def test_the_api_answers_as_predict_prepares_and_the_model_reads(client, classifier, tmp_path):
    images, _ = mnist_test_images()
    for index in (3, 4):
        path = tmp_path / f"{index}.png"
        path.write_bytes(png_bytes(255 - images[index]))  # dark on light, as a person writes
        raw = client.post("/predict", content=path.read_bytes(), headers={"Content-Type": "image/png"})
        with path.open("rb") as file:
            form = client.post("/predict", files={"file": ("digit.png", file, "image/png")})
        assert raw.status_code == form.status_code == 200
        assert raw.json() == form.json()
        answer = raw.json()

        # The image the model saw is predict's preparation of the file (data/digits.py) ...
        prepared = load_digit(path)
        assert np.abs(np.array(answer["image"]) - prepared).max() < 1e-4
        # ... and the probabilities are the model's for it.
        expected = classifier.model.predict(prepared[None, ..., None], verbose=0)[0]
        assert np.abs(np.array(answer["probabilities"]) - expected).max() < 1e-5
        assert answer["predicted"] == str(int(expected.argmax())) == answer["class_names"][answer["index"]]
        assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-4


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"", 400, "no image in the request"),
        (b"just some text", 415, "not a readable image"),
        (png_bytes(np.full((40, 40), 255, np.uint8)), 422, "no digit found"),
        (png_claiming(8000, 8000), 413, "more than the 50,000,000 pixels"),
        (b"\0" * 200_001, 413, "more than the 200,000 bytes"),
    ],
    ids=["empty", "text", "blank", "too-many-pixels", "too-many-bytes"],
)
def test_bad_input_gets_a_one_line_json_error_and_the_server_goes_on(client, body, status, message):
    answer = client.post("/predict", content=body, headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == status
    assert message in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert client.post("/predict", content=vertical_stroke()).status_code == 200


def test_an_upload_without_a_length_is_cut_off_at_the_limit(client):
    def chunks():  # sent chunked: no Content-Length to refuse it by
        for _ in range(30):
            yield b"\0" * 10_000

    answer = client.post("/predict", content=chunks())
    assert answer.status_code == 413 and "200,000 bytes" in answer.json()["error"]


def test_a_form_without_the_file_field_and_unknown_paths_are_json_errors(client):
    answer = client.post("/predict", files={"picture": ("a.png", vertical_stroke(), "image/png")})
    assert answer.status_code == 400 and "`file`" in answer.json()["error"]
    assert client.get("/nowhere").status_code == 404 and "error" in client.get("/nowhere").json()
    assert client.get("/predict").status_code == 405


def test_the_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="canvas"' in page.text
    assert "http" not in re.sub(r'href="/|src="/', "", page.text)  # nothing from a CDN: works offline
    assert client.get("/page/page.js").status_code == 200
    assert client.get("/page/page.css").status_code == 200


# --- the command line ----------------------------------------------------------------


def serving_address(process: subprocess.Popen) -> str:
    """The address `serve` prints once the model is loaded and the port bound (log lines,
    which go to stdout too, may come first); empty if the process ends first."""
    for line in process.stdout:
        found = re.search(r"^Serving .* at (http://127\.0\.0\.1:\d+/)", line)  # loopback only
        if found:
            # The access log goes on to stdout: keep reading it, or a full pipe stops the server.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return found.group(1)
    return ""


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """`python -m mnist_hydra.serve` on a free port; yields its address."""
    folder = tmp_path_factory.mktemp("serve")
    process = subprocess.Popen(
        [sys.executable, "-m", "mnist_hydra.serve", f"ckpt_path={trained_run}", "port=0"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    address = serving_address(process)
    assert address, "the server stopped before printing its address"
    yield address
    process.send_signal(signal.SIGINT)  # Ctrl+C
    assert process.wait(timeout=30) == -signal.SIGINT  # uvicorn stops cleanly, then re-raises the signal


def test_the_server_answers_concurrent_clients_each_with_its_own_answer(server):
    import httpx

    images, _ = mnist_test_images()
    bodies = [png_bytes(images[i]) for i in range(10)]
    with httpx.Client(base_url=server, timeout=60) as http:
        assert http.get("health").json()["status"] == "ok"
        alone = [http.post("predict", content=body).json()["probabilities"] for body in bodies]

        def ask(i: int):
            return i % 10, http.post("predict", content=bodies[i % 10]).json()["probabilities"]

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(ask, range(60)))
    assert all(np.allclose(probabilities, alone[which], atol=1e-6) for which, probabilities in answers)


def test_a_taken_port_and_a_missing_checkpoint_are_one_line_errors(cli, server, trained_run, tmp_path):
    port = re.search(r":(\d+)/", server).group(1)
    taken = cli("mnist_hydra.serve", f"ckpt_path={trained_run}", f"port={port}", cwd=tmp_path)
    assert taken.returncode != 0
    assert f"cannot listen on host=127.0.0.1 port={port}" in taken.stderr and "port=0" in taken.stderr
    missing = cli("mnist_hydra.serve", "port=0", cwd=tmp_path)
    assert missing.returncode != 0 and "ckpt_path is required" in missing.stderr


# --- the page in a real browser --------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(monkeypatch):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "no chromium and chromedriver on PATH: on Debian, apt-get install chromium chromium-driver "
            "(.ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager may not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=900,720",
        # Nothing but the test's server: no update checks, no sync, no name lookups elsewhere.
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def draw(driver, canvas, strokes) -> None:
    """Draw with the mouse, as a person does: real pointer events, from the canvas' centre."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver, duration=20)
    for start, *moves in strokes:
        actions.move_to_element_with_offset(canvas, *start).click_and_hold()
        for dx, dy in moves:
            actions.move_by_offset(dx, dy)
        actions.release()
    actions.perform()


def shown_answer(driver) -> tuple[str, list[str]]:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-busy") == "false"
    )
    predicted = driver.find_element("id", "predicted").text
    values = [element.text for element in driver.find_elements("css selector", "#bars .value")]
    return predicted, values


def test_the_page_shows_what_the_api_says_of_the_drawing(server, browser, tmp_path):
    import base64

    import httpx
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_element("id", "run").text.startswith("Run "))
    assert "dataset mnist" in browser.find_element("id", "run").text
    assert "test accuracy" in browser.find_element("id", "run").text
    canvas = browser.find_element("id", "canvas")

    # A 7: a bar across the top, then down to the left, in small steps.
    draw(browser, canvas, [[(-60, -80), *[(12, 0)] * 10, *[(-6, 16)] * 10]])
    predicted, values = shown_answer(browser)
    drawn = browser.execute_script("return document.getElementById('canvas').toDataURL('image/png')")
    png = base64.b64decode(drawn.split(",", 1)[1])
    answer = httpx.post(server + "predict", content=png, timeout=60).json()
    assert predicted == answer["predicted"]
    assert values == [f"{100 * p:.1f}%" for p in answer["probabilities"]]
    seen = browser.execute_script("const c = document.getElementById('seen'); return [c.width, c.height]")
    assert seen == [28, 28]
    browser.save_screenshot(str(tmp_path / "page.png"))

    # Cleared, then one vertical stroke: a 1.
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "predicted").text == "–"
    draw(browser, canvas, [[(0, -90), *[(0, 12)] * 15]])
    predicted, _ = shown_answer(browser)
    assert predicted == "1"
    browser.save_screenshot(str(tmp_path / "page-1.png"))
    assert Path(tmp_path / "page-1.png").stat().st_size > 10_000


# --- a run of one's own data: its classes and colours --------------------------------


def test_a_colour_image_folder_run_is_served_with_its_own_classes(cli, tmp_path):
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.app import create_app
    from mnist_hydra.serving.classifier import Classifier

    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 40, 230)}
    generator = np.random.default_rng(0)
    for name, rgb in colours.items():
        (tmp_path / "shapes" / name).mkdir(parents=True)
        for number in range(10):
            noisy = np.clip(np.array(rgb) + generator.integers(-25, 25, (20, 20, 3)), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).save(tmp_path / "shapes" / name / f"{number}.png")
    trained = cli(
        "mnist_hydra.train",
        "dataset=image_folder",
        f"dataset.path={tmp_path / 'shapes'}",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.channels=3",
        "dataset.image_size=16",
        "model.filters=[8]",
        "model.dense_units=16",
        "trainer.epochs=2",
        "trainer.batch_size=8",
        "tracker=none",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    classifier = Classifier(tmp_path / "run")
    client = TestClient(create_app(classifier, max_bytes=100_000))
    assert client.get("/model").json()["class_names"] == ["blue", "green", "red"]
    assert client.get("/model").json()["dataset"] == "image_folder"

    photo = tmp_path / "photo.jpg"  # another size and format than the training images
    Image.new("RGB", (50, 40), colours["red"]).save(photo)
    answer = client.post("/predict", content=photo.read_bytes()).json()
    prepared = classifier.dataset.prepare(photo)  # predict's preparation: resized, RGB
    assert np.array(answer["image"]).shape == (16, 16, 3)
    assert np.abs(np.array(answer["image"]) - prepared).max() < 1e-4
    expected = classifier.model.predict(prepared[None], verbose=0)[0]
    assert answer["predicted"] == ["blue", "green", "red"][int(expected.argmax())]
    assert np.abs(np.array(answer["probabilities"]) - expected).max() < 1e-5


def test_a_failure_inside_the_server_is_a_json_500_and_the_server_goes_on():
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.app import create_app

    class Failing:  # a classifier whose model breaks on one image
        def describe(self):
            return {"run": "nowhere"}

        def classify(self, data, name):
            if data == b"break":
                raise RuntimeError("the model's call failed\nwith a second line")
            return {"predicted": "fine"}

    client = TestClient(create_app(Failing(), max_bytes=1000), raise_server_exceptions=False)
    broken = client.post("/predict", content=b"break")
    assert broken.status_code == 500
    assert broken.json() == {"error": "the server failed: the model's call failed"}
    assert client.post("/predict", content=b"fine").json() == {"predicted": "fine"}


def test_the_socket_says_tcp_so_that_nagle_is_turned_off():
    """asyncio sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP; with protocol 0
    a kept-alive connection waited about 40 ms a response (docs/performance.md: Serving)."""
    from mnist_hydra.serve import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


@pytest.mark.parametrize(
    "override, message",
    [
        ("port=70000", "port=70000 is not allowed: 1 to 65535, or 0 for any free one"),
        ("max_bytes=0", "max_bytes=0 is not allowed: at least 1"),
    ],
)
def test_bad_serve_settings_are_one_line_errors(cli, override, message, tmp_path):
    result = cli("mnist_hydra.serve", "ckpt_path=anything", override, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
