"""Serving: the prediction API (in process), the command line, and the page in a real browser."""

import io
import re
import shutil
import signal
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import metrics_of, python_command
from PIL import Image, ImageDraw
from test_predict import mnist_test_images, png_claiming

from mnist_hydra.data.digits import load_digit
from mnist_hydra.serving.limits import Limits

LOCAL = "http://127.0.0.1:8000"  # what the in-process client names as the server's address


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

    return TestClient(create_app(classifier, Limits(max_bytes=200_000)), base_url=LOCAL)


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
        expected = classifier.run.model.predict(prepared[None, ..., None], verbose=0)[0]
        assert np.abs(np.array(answer["probabilities"]) - expected).max() < 1e-5
        assert answer["predicted"] == str(int(expected.argmax())) == answer["class_names"][answer["index"]]
        assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-4


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"", 400, "no image in the request"),
        (b"just some text", 415, "not a readable image"),
        (png_bytes(np.full((40, 40), 255, np.uint8)), 422, "no digit found"),
        (png_claiming(8000, 8000), 413, "more than the 4,000,000 pixels"),  # serve's cap, not predict's
        (png_claiming(2100, 2000), 413, "2100x2000, more than the 4,000,000 pixels"),
        (b"\0" * 200_001, 413, "more than the 200,000 bytes"),
    ],
    ids=["empty", "text", "blank", "too-many-pixels", "over-serves-cap", "too-many-bytes"],
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


def test_a_form_is_read_whatever_the_case_of_its_media_type(client):
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="one.png"\r\n\r\n'
    body += vertical_stroke() + b"\r\n--b--\r\n"
    answer = client.post(
        "/predict", content=body, headers={"Content-Type": "Multipart/Form-Data; boundary=b"}
    )
    assert answer.status_code == 200, answer.text
    assert (
        answer.json()["predicted"] == client.post("/predict", content=vertical_stroke()).json()["predicted"]
    )


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ({"Host": "rebound.example:8000"}, 421, "Host 'rebound.example:8000' is not this server's address"),
        ({"Origin": "http://elsewhere.example"}, 403, "another site's page (http://elsewhere.example)"),
        ({"Origin": "http://127.0.0.1:9999"}, 403, "another site's page"),  # another port: another origin
    ],
    ids=["dns-rebinding", "cross-site", "other-port"],
)
def test_another_sites_page_and_a_foreign_host_name_are_refused(client, headers, status, message):
    for method, path in (("GET", "/model"), ("POST", "/predict")):
        answer = client.request(method, path, content=vertical_stroke(), headers=headers)
        assert answer.status_code == status and message in answer.json()["error"]
    assert client.post("/predict", content=vertical_stroke(), headers={"Origin": LOCAL}).status_code == 200
    assert client.get("/model", headers={"Host": "localhost:8000"}).status_code == 200


def test_a_server_open_to_the_network_says_so(cli, tmp_path):
    # Bound on every interface for a moment (port 0: any free one); nothing is sent to it.
    result = cli(
        "mnist_hydra.serve", f"ckpt_path={tmp_path / 'none'}", "host=0.0.0.0", "port=0", cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert (
        "host=0.0.0.0: any machine that reaches this one may use the server, with no authentication" in output
    )
    assert result.returncode == 1 and "no such model file" in result.stderr


def test_the_names_a_server_answers_to():
    from mnist_hydra.serving.limits import allowed_hosts, host_name

    assert allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert allowed_hosts("192.0.2.7") == ("192.0.2.7",)
    assert allowed_hosts("0.0.0.0") == ("*",)
    assert [host_name(h) for h in ("127.0.0.1:80", "[::1]:8000", "localhost")] == [
        "127.0.0.1",
        "::1",
        "localhost",
    ]


def test_images_are_decoded_a_few_at_a_time():
    """Eight requests at once; the stand-in classifier counts how many it decodes at once."""
    import asyncio
    import time

    import httpx

    from mnist_hydra.serving.app import create_app

    class Counting:
        now = most = 0

        def describe(self):
            return {"run": "stand-in"}

        def classify(self, data, name, max_pixels):
            Counting.now += 1
            Counting.most = max(Counting.most, Counting.now)
            time.sleep(0.05)
            Counting.now -= 1
            return {"predicted": "fine"}

    app = create_app(Counting(), Limits(decoders=2))

    async def eight_at_once():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=LOCAL) as http:
            return await asyncio.gather(*(http.post("/predict", content=b"x") for _ in range(8)))

    answers = asyncio.run(eight_at_once())
    assert [a.status_code for a in answers] == [200] * 8 and Counting.most == 2


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


MAX_CONNECTIONS = 16  # the server's; 10 concurrent clients below stay under it


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """`python -m mnist_hydra.serve` on a free port; yields its address."""
    process, address = served(
        ["mnist_hydra.serve", f"ckpt_path={trained_run}", "timeout=2", f"max_connections={MAX_CONNECTIONS}"],
        tmp_path_factory.mktemp("serve"),
    )
    yield address
    stopped(process)  # Ctrl+C: stopped cleanly, in time, whatever SIGINT's inherited disposition


def served(command: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
    """`python -m <command> port=0` from `cwd`, once it prints the address it serves."""
    process = subprocess.Popen(
        python_command(*command, "port=0"),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    address = serving_address(process)
    assert address, f"{' '.join(command)} stopped before printing its address"
    return process, address


def stopped(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)  # Ctrl+C
    assert process.wait(timeout=120) == 0


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


def test_a_request_too_slow_to_arrive_is_cut_off_and_the_server_goes_on(server):
    import time

    import httpx

    port = int(re.search(r":(\d+)/", server).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=15) as slow:  # its head, a little of it
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert slow.recv(1000) == b""  # closed by the server (the client's 15 s would raise)
        assert time.monotonic() - started > 1.5  # after its timeout=2, not at once
    with socket.create_connection(("127.0.0.1", port), timeout=15) as slow:  # its head, then half a body
        slow.sendall(
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        slow.sendall(b"x" * 10)
        reply = b""
        while b"}" not in reply and (part := slow.recv(10_000)):  # the head and the JSON body
            reply += part
        assert reply.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 2 s" in reply
    assert httpx.post(server + "predict", content=vertical_stroke(), timeout=30).status_code == 200


def test_clients_silent_after_an_answer_are_closed_and_cannot_lock_others_out(server):
    """Each takes one of max_connections: it sends a request that announces a body, reads the answer
    (which needed no body), sends one byte of the body and stays silent. Each is closed within the
    server's timeout (2 s) of its answer, and then a new client is served, not refused (503)."""
    import httpx

    port = int(re.search(r":(\d+)/", server).group(1))
    silent = []
    for _ in range(MAX_CONNECTIONS - 1):  # uvicorn answers 503 at the max_connections-th at once
        client = socket.create_connection(("127.0.0.1", port), timeout=120)
        client.sendall(
            f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100\r\n\r\n".encode()
        )
        reply = b""
        while b"}" not in reply and (part := client.recv(10_000)):
            reply += part
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        client.sendall(b"x")
        silent.append(client)
    try:
        for client in silent:
            assert client.recv(1000) == b""  # closed by the server (a silent 120 s would raise)
    finally:
        for client in silent:
            client.close()
    assert httpx.get(server + "health", timeout=60).status_code == 200


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

    WebDriverWait(driver, 300).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-busy") == "false",
        "the page never showed an answer (its body stayed data-busy)",
    )
    predicted = driver.find_element("id", "predicted").text
    values = [element.text for element in driver.find_elements("css selector", "#bars .value")]
    return predicted, values


def test_the_page_shows_what_the_api_says_of_the_drawing(server, browser, tmp_path):
    import base64

    import httpx
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 300).until(
        lambda d: d.find_element("id", "run").text.startswith("Run "),
        "the page never showed its run (GET /model)",
    )
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


def test_clear_while_an_answer_is_on_its_way_keeps_the_page_clear(server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 300).until(
        lambda d: d.find_element("id", "run").text.startswith("Run "),
        "the page never showed its run (GET /model)",
    )
    # Every answer arrives a second late; once the page has read it (its JSON handed over, then one
    # more turn of the event loop for what the page does with it), window.answersRead counts it.
    browser.execute_script(
        "window.asked = 0; window.answersRead = 0; const real = window.fetch;"
        "window.fetch = (...a) => (window.asked++, real(...a)).then(r => new Promise(ok => setTimeout(() => {"
        "  const json = r.json.bind(r);"
        "  r.json = () => json().then(data => { setTimeout(() => window.answersRead++, 0); return data; });"
        "  ok(r); }, 1000)));"
    )
    draw(browser, browser.find_element("id", "canvas"), [[(0, -90), *[(0, 12)] * 15]])
    browser.find_element("id", "clear").click()  # while the drawing's answer is on its way
    WebDriverWait(browser, 300).until(
        lambda d: d.execute_script("return window.asked > 0 && window.answersRead === window.asked")
    )
    assert browser.find_element("id", "predicted").text == "–"
    assert browser.find_element("id", "bars").text == ""


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
    client = TestClient(create_app(classifier, Limits(max_bytes=100_000)), base_url=LOCAL)
    assert client.get("/model").json()["class_names"] == ["blue", "green", "red"]
    assert client.get("/model").json()["dataset"] == "image_folder"

    photo = tmp_path / "photo.jpg"  # another size and format than the training images
    Image.new("RGB", (50, 40), colours["red"]).save(photo)
    answer = client.post("/predict", content=photo.read_bytes()).json()
    prepared = classifier.dataset.prepare(photo)  # predict's preparation: resized, RGB
    assert np.array(answer["image"]).shape == (16, 16, 3)
    assert np.abs(np.array(answer["image"]) - prepared).max() < 1e-4
    expected = classifier.run.model.predict(prepared[None], verbose=0)[0]
    assert answer["predicted"] == ["blue", "green", "red"][int(expected.argmax())]
    assert np.abs(np.array(answer["probabilities"]) - expected).max() < 1e-5


def test_a_failure_inside_the_server_is_a_json_500_and_the_server_goes_on():
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.app import create_app

    class Failing:  # a classifier whose model breaks on one image
        def describe(self):
            return {"run": "nowhere"}

        def classify(self, data, name, max_pixels):
            if data == b"break":
                raise RuntimeError("the model's call failed\nwith a second line")
            return {"predicted": "fine"}

    client = TestClient(
        create_app(Failing(), Limits(max_bytes=1000)), base_url=LOCAL, raise_server_exceptions=False
    )
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


def test_a_sweep_is_served_as_one_ensemble_answering_its_members_mean(tmp_path):
    from fastapi.testclient import TestClient
    from test_trust import received_run

    from mnist_hydra.serving.app import create_app
    from mnist_hydra.serving.classifier import Classifier

    sweep = tmp_path / "sweep"
    for job in "01":  # two small models of their own random weights, as a sweep's jobs
        received_run(sweep / job)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
    classifier = Classifier(sweep)
    client = TestClient(create_app(classifier, Limits(max_bytes=200_000)), base_url=LOCAL)
    described = client.get("/model").json()
    assert described["run"] == str(sweep) and described["test_accuracy"] is None
    assert [member["run"] for member in described["members"]] == [str(sweep / "0"), str(sweep / "1")]
    assert described["parameters"] == 2 * 7850

    images, _ = mnist_test_images()
    answer = client.post("/predict", content=png_bytes(images[5])).json()
    prepared = np.array(answer["image"])[None, ..., None]
    outputs = [run.model.predict(prepared, verbose=0)[0] for run in classifier.members]
    assert not np.allclose(outputs[0], outputs[1])
    assert np.abs(np.array(answer["probabilities"]) - np.mean(outputs, axis=0)).max() < 1e-5


# --- corrections kept: collect -> fine-tune -> serve --------------------------------------


def test_a_correction_is_kept_under_the_same_rules_as_a_prediction(classifier, tmp_path):
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.app import create_app
    from mnist_hydra.serving.collect import Collector

    collector = Collector(tmp_path / "mine", classifier.run.class_names, max_per_label=1)
    client = TestClient(create_app(classifier, Limits(max_bytes=200_000), collector), base_url=LOCAL)
    assert client.get("/model").json()["collect"] == {"folder": str(tmp_path / "mine"), "max_per_label": 1}

    answer = client.post("/collect?label=7", content=vertical_stroke())
    assert answer.status_code == 200, answer.text
    assert answer.json()["view"] == str(tmp_path / "mine" / "7" / "0.png")
    view = np.asarray(Image.open(answer.json()["view"])) / 255.0
    seen = classifier.dataset.prepare(io.BytesIO(vertical_stroke()))[..., 0]  # what /predict's model read
    assert np.abs(view - seen).max() <= 0.5 / 255 + 1e-6
    assert Image.open(answer.json()["drawing"]).size == (200, 200)

    for query, body, headers, status, message in [
        ("label=7", vertical_stroke(), {}, 507, "label 7 holds 1 drawings already"),
        ("label=x", vertical_stroke(), {}, 422, "label='x' is not one of the run's classes: 0, 1"),
        ("", vertical_stroke(), {}, 400, "no label"),
        ("label=3", b"", {}, 400, "no image in the request"),
        ("label=3", b"\0" * 200_001, {}, 413, "more than the 200,000 bytes"),
        ("label=3", vertical_stroke(), {"Origin": "http://evil.example"}, 403, "another site's page"),
        ("label=3", vertical_stroke(), {"Host": "evil.example"}, 421, "is not this server's address"),
    ]:
        refused = client.post(f"/collect?{query}", content=body, headers=headers)
        assert refused.status_code == status and message in refused.json()["error"], refused.text
    assert sorted(path.name for path in (tmp_path / "mine").rglob("*.png")) == ["0.png", "0.png"]


def test_a_server_without_collect_dir_keeps_nothing(client):
    assert client.get("/model").json()["collect"] is None
    answer = client.post("/collect?label=7", content=vertical_stroke())
    assert answer.status_code == 404 and "collect_dir" in answer.json()["error"]


def test_collect_fine_tune_serve(trained_run, browser, cli, tmp_path):
    """The README's three commands (Teach it your handwriting), in Chromium: draw, correct,
    fine-tune on the folder the page made, serve the fine-tuned run and draw on its page."""
    from selenium.webdriver.support.ui import WebDriverWait

    server, address = served(
        ["mnist_hydra.serve", f"ckpt_path={trained_run}", "collect_dir=my_digits"], tmp_path
    )
    try:
        browser.get(address)
        WebDriverWait(browser, 300).until(
            lambda d: d.find_element("id", "collecting").is_displayed(),
            "the page never said where corrected drawings go",
        )
        assert str(tmp_path / "my_digits") in browser.find_element("id", "collecting").text
        canvas = browser.find_element("id", "canvas")
        strokes = [[(0, -90), *[(0, 12)] * 15], [(10, -80), *[(-1, 12)] * 13], [(-5, -70), *[(1, 11)] * 12]]
        for kept, stroke in enumerate(strokes, start=1):
            browser.find_element("id", "clear").click()
            draw(browser, canvas, [stroke])  # a 1 to the model; this writer's 7
            predicted, _ = shown_answer(browser)
            assert predicted != "7"
            browser.find_element("css selector", "#labels button[data-label='7']").click()
            WebDriverWait(browser, 300).until(
                lambda d, kept=kept: (
                    d.find_element("tag name", "body").get_attribute("data-collected") == str(kept)
                ),
                "the page never said the correction was kept",
            )
            assert "Kept as 7" in browser.find_element("id", "collected").text
    finally:
        stopped(server)
    assert sorted(path.name for path in (tmp_path / "my_digits" / "7").glob("*.png")) == [
        "0.png",
        "1.png",
        "2.png",
    ]

    # The README's fine-tuning command, with the model and optimizer of the run it starts from.
    tuned = cli(
        "mnist_hydra.train",
        f"init_from={trained_run}",
        "dataset=digit_folder",
        "dataset.path=my_digits",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.test_split=0.34",
        "optimizer=adam",
        "optimizer.learning_rate=3e-4",
        "trainer.epochs=2",
        "tracker=none",
        "hydra.run.dir=tuned",
        cwd=tmp_path,
    )
    assert tuned.returncode == 0, tuned.stderr
    record = metrics_of(tmp_path / "tuned")
    assert record["status"] == "completed" and record["init_from"] == str(trained_run)

    server, address = served(["mnist_hydra.serve", "ckpt_path=tuned"], tmp_path)
    try:
        browser.get(address)
        WebDriverWait(browser, 300).until(
            lambda d: "dataset digit_folder (10 classes)" in d.find_element("id", "run").text,
            "the fine-tuned run's page never showed its run",
        )
        assert not browser.find_element("id", "collecting").is_displayed()
        draw(browser, browser.find_element("id", "canvas"), [[(0, -90), *[(0, 12)] * 15]])
        predicted, values = shown_answer(browser)
        assert predicted in [str(digit) for digit in range(10)] and len(values) == 10
        assert not browser.find_element("id", "correct").is_displayed()  # no collect_dir: no labels offered
    finally:
        stopped(server)
