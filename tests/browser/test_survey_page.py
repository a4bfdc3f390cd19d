"""The listening-test page in headless Chromium, filled as a participant would fill it.

Builds a small survey from the shipped data with `i2r survey-build`, opens it from file://,
answers (with a reload half-way and a refused incomplete submission), downloads the CSV and
checks that `i2r survey-stats` accepts it. Skips without Chromium, except under CI=true.
"""

import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from i2r.cli import main
from i2r.survey.responses import read_responses

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXAMPLES = [  # (image, real IR, "generated" IR, scene, example); a different real IR stands in for a model's
    ("interior_albi_cathedral_choir.jpg", "openair_st_andrews_church_stereo.wav", "openair_jack_lyons_lp4_w_mono.wav", "large", "albi"),
    ("interior_clinic_waiting_room.jpg", "openair_domestic_living_room_mono.wav", "seminar_room_clap_mono.wav", "small", "clinic"),
    ("exterior_krakow_dom_kultury.jpg", "openair_genesis6_studio_live_room_bformat.wav", "openair_arthur_sykes_rymer_s1r4_w_mono.wav", "outdoor", "krakow"),
]

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, and CI=true requires the browser test to run")
        pytest.skip("chromium is not installed (tests/browser/ensure_chromium.sh installs it)")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    root = tmp_path_factory.mktemp("survey")
    speech, fs = sf.read(DATA / "dry" / "cmu_arctic_us_aew_a0001_speech.wav")
    sf.write(root / "dry.wav", speech[: int(0.8 * fs)], fs)
    # survey-build refuses paths that leave the CSV's folder, so the files sit next to it.
    for img, real, gen, *_ in EXAMPLES:
        shutil.copyfile(DATA / "images" / img, root / img)
        for ir in (real, gen):
            shutil.copyfile(DATA / "irs" / ir, root / ir)
    lines = ["image,real_ir,generated_ir,scene,example"]
    lines += [",".join(example) for example in EXAMPLES]
    (root / "examples.csv").write_text("\n".join(lines) + "\n")
    out = root / "site"
    assert main(["survey-build", str(root / "examples.csv"), "--dry", str(root / "dry.wav"), "--out", str(out)]) == 0
    return out


@pytest.fixture
def page_factory():
    """Open an HTML file in headless Chromium; JavaScript errors fail the test."""
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    errors = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 1000})

        def open_page(path):
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri())
            return page

        yield open_page
        browser.close()
    assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture
def page(page_factory, site):
    return page_factory(site / "index.html")


def _rate(page, item_id, rating, value):
    page.click(f"label[for='{rating}-{item_id}-{value}']")


def _order(page):
    return page.eval_on_selector_all("#items article.item", "nodes => nodes.map(n => n.id.slice(5))")


def test_participant_fills_reloads_and_exports(page, site, tmp_path):
    stimuli = page.evaluate("window.I2R_SURVEY.stimuli")
    assert len(stimuli) == 6
    page.fill("#participant", "=cmd")
    page.click("#start-form button[type=submit]")
    assert page.is_visible("#participant-error")  # a formula-like ID is refused
    page.fill("#participant", "expert-07")
    page.click("#start-form button[type=submit]")
    order = _order(page)
    assert sorted(order) == sorted(s["id"] for s in stimuli)
    assert page.is_visible(f"#item-{order[0]} img") and page.locator(f"#item-{order[0]} audio").count() == 1
    planned = {sid: (1 + i % 5, 5 - i % 5) for i, sid in enumerate(order)}
    page.screenshot(path=str(tmp_path / "survey_start.png"))
    page.check("#screening-2", force=True)
    for sid in order[:3]:
        _rate(page, sid, "quality", planned[sid][0])
        _rate(page, sid, "match", planned[sid][1])
    page.reload()
    assert _order(page) == order  # same participant, same order
    assert page.is_checked(f"#quality-{order[0]}-{planned[order[0]][0]}") and page.is_checked("#screening-2")
    page.click("#submit")  # incomplete: refused
    assert page.is_visible("#errors") and not page.is_visible("#done")
    assert "Please answer 10 more" in page.inner_text("#errors")
    assert page.evaluate("document.activeElement.id") == "errors"
    page.screenshot(path=str(tmp_path / "survey_refused.png"))
    assert page.locator("fieldset.invalid").count() == 2 * 3 + 2 * 2
    for sid in order[3:]:
        _rate(page, sid, "quality", planned[sid][0])
        _rate(page, sid, "match", planned[sid][1])
    for check in page.evaluate("window.I2R_SURVEY.attention"):
        _rate(page, check["id"], "quality", check["quality"])
        _rate(page, check["id"], "match", check["match"])
    assert not page.is_visible("#errors")  # the list of missing answers clears as they are given
    page.screenshot(path=str(tmp_path / "survey_complete.png"))
    page.click("#submit")
    assert page.is_visible("#done")
    files = [_download(page, tmp_path / "expert-07.csv")]
    _check_own_ratings(files[0], stimuli, planned)
    page.reload()  # a finished participant still sees the download after a reload
    assert page.is_visible("#done")
    page.on("dialog", lambda dialog: dialog.accept())
    for number, shift in ((8, 1), (9, 2)):  # two more participants on the same machine
        page.click("#reset")
        page.wait_for_selector("#start-form", state="visible")
        _fill_all(page, f"expert-{number:02d}", lambda i: (1 + (i + shift) % 5, 1 + (2 * i + shift) % 5))
        files.append(_download(page, tmp_path / f"expert-{number:02d}.csv"))
    assert main(["survey-stats", *map(str, files), "--format", "json"]) == 0


def _fill_all(page, participant, ratings):
    page.fill("#participant", participant)
    page.click("#start-form button[type=submit]")
    page.check("#screening-2", force=True)
    for i, sid in enumerate(_order(page)):
        _rate(page, sid, "quality", ratings(i)[0])
        _rate(page, sid, "match", ratings(i)[1])
    for check in page.evaluate("window.I2R_SURVEY.attention"):
        _rate(page, check["id"], "quality", check["quality"])
        _rate(page, check["id"], "match", check["match"])
    page.click("#submit")
    assert page.is_visible("#done")


def _download(page, path):
    with page.expect_download() as info:
        page.click("#download")
    info.value.save_as(path)
    return path


def _check_own_ratings(csv_path, stimuli, planned):
    responses = read_responses(csv_path)
    assert responses.excluded == [] and len(responses.data) == 6
    by_id = {(s["example"], s["source"]): s["id"] for s in stimuli}
    for row in responses.data.itertuples():
        assert (row.quality, row.match) == planned[by_id[(row.example, row.source)]]


def test_order_differs_between_participants_and_checks_are_exported(page, tmp_path):
    page.fill("#participant", "p-one")
    page.click("#start-form button[type=submit]")
    first = _order(page)
    page.evaluate("localStorage.clear()")
    page.reload()
    page.fill("#participant", "p-two")
    page.click("#start-form button[type=submit]")
    assert _order(page) != first and sorted(_order(page)) == sorted(first)
    page.check("#screening-0", force=True)  # wrong screening answer
    for sid in _order(page):
        _rate(page, sid, "quality", 3)
        _rate(page, sid, "match", 3)
    for check in page.evaluate("window.I2R_SURVEY.attention"):
        _rate(page, check["id"], "quality", 1 if check["quality"] != 1 else 2)  # fails the attention check
        _rate(page, check["id"], "match", check["match"])
    page.click("#submit")
    csv_path = _download(page, tmp_path / "failed.csv")
    text = csv_path.read_text()
    assert text.splitlines()[0] == "participant,example,scene,source,quality,match,screening_passed,attention_passed"
    assert all(line.endswith(",false,false") for line in text.splitlines()[1:])
    assert read_responses(csv_path).excluded == [{"participant": "p-two", "reason": "failed the screening and attention check"}]


def test_page_without_a_built_survey_says_how_to_build_one(page_factory):
    page = page_factory(Path(__file__).resolve().parents[2] / "survey" / "index.html")
    assert page.is_visible("#missing") and "i2r survey-build" in page.inner_text("#missing")
    assert not page.is_visible("#start") and not page.is_visible("#survey")
