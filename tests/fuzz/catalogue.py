"""Build FAILURES.md from a fuzz run: ``FERKIT_FUZZ_LOG=log.jsonl pytest tests/fuzz > run.out`` then

    python tests/fuzz/catalogue.py log.jsonl run.out tests/fuzz/FAILURES.md

Every failing case is listed under its failure class and under its root cause (``ROOT_CAUSES``: first match wins;
cases no rule matches are listed as unassigned, so a new failure is never silently dropped).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLASSES = {
    "traceback": "Tracebacks (an exception escaped `main()`)",
    "native_crash": "Native crashes (the process died on a signal)",
    "hang": "Hangs (killed at the case's time bound)",
    "memory": "Runaway memory (hit the case's address-space bound)",
    "silently_wrong": "Silently wrong (exit 0 with a wrong result, or a value that must be refused was accepted)",
    "lost_or_duplicated": "Lost or duplicated records (inputs overwritten, records mixed, duplicated or different)",
    "messy_error": "Not one line (exit 2, but progress lines, warnings or a raw newline around the error)",
    "wrong_exit": "Other exit codes",
}


@dataclass
class RootCause:
    key: str
    title: str
    fix: str  # where the fix belongs
    why: str  # the root cause, read from the source
    match: Callable[[dict], bool]


def _id(*patterns: str) -> Callable[[dict], bool]:
    rx = re.compile("|".join(f"(?:{p})" for p in patterns))
    return lambda r: bool(rx.search(r["id"]))


def _last(pattern: str) -> Callable[[dict], bool]:
    rx = re.compile(pattern)
    return lambda r: bool(r.get("traceback") and rx.search(r["traceback"]["last"]))


def _verdict(v: str, inner: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda r: r["verdict"] == v and inner(r)


ROOT_CAUSES = [
    RootCause(
        "usage-errors",
        "Usage errors escape as tracebacks (typer's vendored click)",
        "`src/ferkit/cli.py: main()`",
        "`main()` runs `app(standalone_mode=False)` and maps `click.exceptions.ClickException`/`Abort` to exit codes, "
        "but the installed typer (0.29) vendors click as `typer._click`; its `UsageError`, `NoSuchOption`, "
        "`MissingParameter`, `BadParameter`, `BadOptionUsage` and `NoArgsIsHelpError` are different classes, so they "
        "fall through to the final `raise` and typer's excepthook prints a rich traceback (exit 1). Fix: catch the "
        "exception classes typer actually raises (import them from `typer._click.exceptions` with a fallback to "
        "`click.exceptions`, or duck-type on `exit_code` + `format_message()`), print `error: <message>` as one line, "
        "exit 2; `NoArgsIsHelpError` (bare `ferkit`) should print the help and exit 0 or 2.",
        _last(r"typer\._click\.exceptions"),
    ),
    RootCause(
        "fps",
        "`--fps` accepts inf / NaN / huge values; the sampler loop never ends",
        "`src/ferkit/cli.py: _parse_fps()` and `src/ferkit/video.py: iter_video()`",
        "`_parse_fps` only refuses `fps <= 0`: `float('inf')`, `'1e400'` and `'nan'` pass (`nan <= 0` is false). In "
        "`iter_video`, `step = 1/fps` is 0 for inf, and below the float spacing of `next_t` for 1e308, so "
        "`while next_t <= t + 1e-6: next_t += step` never advances (1e9 takes 1e9 turns per second of video); with NaN "
        "every "
        "comparison is false and every frame is taken. Fix: `_parse_fps` requires a finite number in (0, cap] "
        "(e.g. ≤ 1000, or treat anything above the stream rate as 'all'); `iter_video` computes the next sampling "
        "instant arithmetically (`next_t = (math.floor(t * fps + 1e-9) + 1) / fps`) instead of a stepping loop and "
        "re-checks `math.isfinite(fps)` (the API passes fps straight into `AnalyzeOptions`). `calibrate --fps` shares "
        "`_parse_fps`.",
        _id(r"^(analyze|calibrate)/fps-"),
    ),
    RootCause(
        "analyze-option-domains",
        "analyze: option values outside their domain are accepted",
        "`src/ferkit/cli.py: analyze()` / `src/ferkit/pipeline.py: AnalyzeOptions`, `make_analyzer()`",
        "`--gate-threshold` is used as given (negative, >1, NaN or 1e308 gate every face or none, also when there is "
        "no `--gate`); `--detect-interval` negative/NaN/-inf is silently 'detect every frame'; `--detector` is only "
        "looked up when a detector is first built, so with `--crops` (or in `evaluate --crops`) a typo is ignored; an "
        "empty path argument is `Path('') == Path('.')` and analyses the whole current folder. Fix: validate in one "
        "place before any work (an `AnalyzeOptions.__post_init__` / `ModelSetup` check called by `make_analyzer`): "
        "`0 <= gate_threshold <= 1` and finite, `detect_interval` finite ≥ 0 (inf may mean 'once'), detector name in "
        "`faces.DETECTORS`; `cli.analyze` refuses empty path strings.",
        _id(
            r"^analyze/(gate-threshold|detect-interval|detector-unknown)",
            r"^evaluate/detector-unknown",
            r"/empty-path-",
        ),
    ),
    RootCause(
        "fuse-option-domains",
        "fuse: window / nearest / threshold / weights domains, and no cap on the window table",
        "`src/ferkit/cli.py: fuse()` (weights parsing) and `src/ferkit/channels.py: fuse_files()`, `sync_windows()`, "
        "`sync_nearest()`, `fuse_channels()`",
        "`sync_windows` checks only `window > 0`: inf passes and gives `start = 0 * inf = NaN`; 5e-324 overflows "
        "`t / window` to inf (`math.floor` raises OverflowError); 1e-9 over the cases' 2.5 s span materialises 2.5e9 "
        "row dicts (`rows = [... for k in ks]`, channels.py:161) — the issue's 24 GB run. `--nearest` "
        "negative/NaN matches nothing silently; "
        "`--threshold` NaN/±inf disables or forces every switch; `--weights` accepts NaN, inf, negative and all-zero "
        "weights (`w > 0` filters NaN and negatives out silently, inf makes every score NaN). Fix: in `fuse_files` "
        "(also reached from the Python API) require finite positive `window` and refuse when "
        "`(t_max - t_min) / window` exceeds a cap (e.g. 1e6 rows), finite `tolerance >= 0`, finite `threshold` in "
        "[0, 1]; in `cli.fuse` (or `fuse_files`) finite non-negative weights with at least one > 0.",
        _id(r"^fuse/(window|nearest|threshold|weights)-"),
    ),
    RootCause(
        "calibrate-option-domains",
        "calibrate: `--target` ratios and `--seed` not range-checked",
        "`src/ferkit/calibration.py: parse_target()`; `src/ferkit/cli.py: calibrate()` (seed)",
        "`parse_target` refuses negative ratios and a sum ≤ 0 only: NaN and inf ratios pass (`nan < 0` is false; "
        "`inf / inf = nan`), and 1e308+1e308 overflows the sum so every ratio becomes 0 — the fit runs against a "
        "NaN/zero target and exits 0. `--seed` is handed to `train_test_split`, which only takes [0, 2**32): "
        "`InvalidParameterError` escapes from `api.calibrate` (api.py:340) after the logits were computed. Fix: "
        "`parse_target` requires finite ratios (and a finite sum); `--seed` gets `min=0, max=2**32 - 1` in "
        "`cli.calibrate` (and `api.calibrate` checks it before computing logits).",
        _id(r"^calibrate/(target|seed)-"),
    ),
    RootCause(
        "huge-image-abort",
        "Images with a side ≥ 32767 px abort the process inside MediaPipe's OpenCV",
        "`src/ferkit/video.py: read_image()` (or `src/ferkit/faces.py: _MediaPipeBase` detectors)",
        "`read_image` caps the pixel count (100 MP) but not the side length. A 32767×305 PNG (10 MP) passes, and "
        "`BlazeFace.detect` hands it to MediaPipe, whose bundled OpenCV `cv::remap` asserts `src.cols < SHRT_MAX` and "
        "throws a C++ exception nobody catches: `terminate called … (-215:Assertion failed) dst.cols < SHRT_MAX` and "
        "SIGABRT. The whole process dies, so a folder run loses the records of the good images before it (they are "
        "still in the batch pipeline) and `evaluate` loses everything. Fix: refuse (InputError 'too large', so folder "
        "runs skip it) or downscale any image whose longer side is ≥ 32767 — best a `MAX_IMAGE_SIDE` check beside "
        "`MAX_IMAGE_PIXELS` in `read_image`, plus a guard in the MediaPipe detectors (downscale to ≤ 4096 px and "
        "scale boxes back) because video frames and API callers reach `detect()` without `read_image`.",
        _id(r"image-dims-", r"folder-with-huge-image", r"dataset-huge-image"),
    ),
    RootCause(
        "high-bit-depth",
        "16-bit and float images are clipped to white/black and classified",
        "`src/ferkit/video.py: read_image()`",
        "`read_image` returns `np.asarray(ImageOps.exif_transpose(im).convert('RGB'))`. Pillow converts mode `I;16` "
        "(16-bit PNG/TIFF) and `I`/`F` (32-bit int/float) to RGB by clipping each value to 255, so a 16-bit face "
        "becomes a white square (and a float image in [0, 1] a black one), which is then classified ('angry') with "
        "exit 0. Fix: for modes `I;16*`/`I` scale to 8 bits (`>> 8`, or by the image's max for 12-bit data), for `F` "
        "refuse or rescale by range; or refuse these modes with a clear InputError.",
        _id(r"image-(16bit|48bit|float-tiff)"),
    ),
    RootCause(
        "truncated-video",
        "A truncated video is analysed up to the cut without a word",
        "`src/ferkit/video.py: iter_video()`; `src/ferkit/api.py: _unlabelled_logits()` / `src/ferkit/cli.py: "
        "calibrate()` for the warnings",
        "`iter_video` only reports a decoder *error* part-way; an MP4 with its index first (`faststart`) that is cut "
        "short simply reaches EOF early, so the frames after the cut are missing from the records with exit 0 and no "
        "warning (`problems` stays empty). Fix: after the loop compare the last decoded timestamp / frame count with "
        "the container's `stream.duration`/`stream.frames` (`video_info`) and append 'video ends at X s of Y s "
        "(truncated?)' to `problems`; `calibrate --unlabelled` builds its own `Analyzer` and never prints "
        "`analyzer.warnings`/`skipped` — return and print them.",
        _id(r"video-truncated", r"video-folder-with-cut", r"unlabelled-truncated-video"),
    ),
    RootCause(
        "ffmpeg-url-names",
        "File names are handed to FFmpeg as URLs",
        "`src/ferkit/video.py: _open()`",
        "`av.open(str(path))` lets FFmpeg parse the name as a URL: a file called `concat:v.mp4` or `file:v.mp4` makes "
        "FFmpeg open `v.mp4` instead (the concat/file protocols), so a garbage file is 'analysed' as another video "
        "and its records carry the wrong source. Fix: open an absolute path (`str(path.resolve())`, which starts "
        "with `/` and so is never a protocol), or pass an open file object (`av.open(path.open('rb'))`).",
        _id(r"video-(ffmpeg|file)-protocol-name"),
    ),
    RootCause(
        "error-line-newlines",
        "Error messages carry raw newlines from file names",
        "`src/ferkit/cli.py: main()`",
        "`main()` prints `f'error: {e}'`; messages embed paths as `f'{path}: …'`, so a name with `\\n` or `\\r` splits "
        "the one error line. Fix: in `main()` (the one exit point) replace control characters in the message "
        "(e.g. `msg.encode('unicode_escape')` for C0 characters, or `repr()` of the path in `InputError`s).",
        _id(r"newline-in-name"),
    ),
    RootCause(
        "non-utf8-names",
        "Non-UTF-8 file names break CSV/Parquet output and fuse's JSON",
        "`src/ferkit/records.py: RecordWriter._open()/write()`, `read_records()`/`close()` (Parquet); "
        "`src/ferkit/channels.py: fuse_files()` (channel names)",
        "Undecodable bytes in a file name become lone surrogates in `str(path)` (`surrogateescape`). JSONL survives "
        "(json escapes them), but the CSV writer opens the file with the default strict UTF-8 and raises "
        "`UnicodeEncodeError` on the first record (records.py:124), and pandas 3's pyarrow-backed `str` dtype cannot "
        "hold the string: `read_records` fails building its DataFrame (records.py:167) when `RecordWriter.close` turns "
        "the `.partial.jsonl` into Parquet (and in `_plots`, where the failure is swallowed as a warning), and in "
        "`fuse` the channel's file stem becomes a column name of `_frame` (channels.py:50). Fix: decide one "
        "representation for `source` (e.g. "
        "`os.fsdecode` → `str.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')`), apply it "
        "where a record is made (`FaceRecord.source`, pipeline `_records`) and to channel names, so every writer "
        "sees valid UTF-8.",
        _id(r"non-utf8"),
    ),
    RootCause(
        "same-input-twice",
        "One file under two path spellings is analysed twice",
        "`src/ferkit/pipeline.py: collect_inputs()`; `src/ferkit/records.py: resume_points()` and "
        "`src/ferkit/api.py: run_analysis()` (resume keys)",
        "`collect_inputs` keeps every path as typed: `in/a.jpg in/../in/a.jpg` or a folder plus a file inside it give "
        "two sources and duplicate records. Resume points are keyed by `str(path)` as written in the records, so "
        "`--resume` with `./sub/../v.mp4`, an absolute path or a symlink finds nothing to skip and appends the whole "
        "video again. Fix: de-duplicate sources by `Path.resolve()` (or `os.path.samefile`) in `collect_inputs`, and "
        "key `resume_points`/`start_after` by the resolved path (keep the typed path in the record's `source`).",
        _id(r"same-file-named-twice", r"file-and-its-folder", r"resume-same-video"),
    ),
    RootCause(
        "output-is-input",
        "The output may be one of the inputs (or inside an input folder)",
        "a shared pre-flight check (new helper, e.g. `ferkit.outputs.check_output(path, inputs)`) called by "
        "`api.run_analysis`, `cli.fuse`, `cli.evaluate`, `api.calibrate`, `cli_train.dataset_cmd`",
        "No command compares its output path with its inputs. `analyze x.jpg -o x.jpg` (the suffix check only looks "
        "at known record suffixes) writes JSON over the photo; `-o v.mp4` truncates the video while it is being "
        "decoded; an output name that is a symlink to an input writes through it; `fuse … -o face.jsonl`, `evaluate "
        "--report ds/happy/x.jpg`, `calibrate -o ds/sad/x.jpg`, `dataset fer.csv --json fer.csv` overwrite their "
        "inputs; `evaluate --out-dir ds/happy` drops PNGs into a class folder that the next evaluation scores. Fix: "
        "before any work resolve the output (following symlinks) and refuse when it equals an input file, is inside "
        "an input folder (analyze/evaluate datasets), or is an existing file that is not a previous output of the "
        "same command.",
        _id(r"output-(equals|inside|symlink-to-input|report-equals|out-dir-inside|json-equals)"),
    ),
    RootCause(
        "unwritable-output",
        "Unwritable or full output locations: raw OSError after the work is done",
        "`src/ferkit/cli.py: evaluate()` (report), `fuse()`; `src/ferkit/reports.py: write_report()`; "
        "`src/ferkit/calibration.py: Calibration.save()`; `src/ferkit/records.py: RecordWriter.write()/close()`; "
        "`src/ferkit/cli_train.py: dataset_cmd()`, `train_batch_cmd()`; `src/ferkit/demo.py: make_samples()`; "
        "`src/ferkit/api.py: _labelled_logits()` (cache); `src/ferkit/train_data.py: prepare_data()` (run folder); "
        "`src/ferkit/plots.py: _save()`",
        "Only `RecordWriter._open` wraps `OSError`; every other write (`report_file.write_text`, `write_report`, "
        "`Calibration.save`, `output.write_text` in fuse, `json_out.write_text`, `summary.write_text`, the logits "
        "cache `mkdir`, the run folder `mkdir`, plot `savefig`) raises `FileExistsError`/`NotADirectoryError`/"
        "`IsADirectoryError`/`OSError(ENOSPC)` as a traceback — and only after the whole evaluation, calibration, "
        "fusion or training has run. `RecordWriter.write` flushes each record, so ENOSPC escapes from `write`/"
        "`__exit__` unwrapped. Fix: one helper that (1) before the work creates the parent folder and opens a temp "
        "file beside the target (catching OSError → InputError 'cannot write …'), and (2) writes atomically "
        "(temp file + `os.replace`) with OSError → InputError; use it for every output option. Record writers wrap "
        "OSError in `write`/`close` too.",
        _id(
            r"output-(disk-full|parent-is-file|is-directory|out-dir-(is-file|under-file|report-md)|report-(disk|parent|is-dir)|"
            r"json-(disk|parent)|out-is-file|out-under-file|cache-dir|plot-path)",
            r"summary-unwritable",
            r"config-output-(under-a-file|dev-null)",
        ),
    ),
    RootCause(
        "fifo-output",
        "An output path that is a FIFO blocks forever",
        "`src/ferkit/records.py: RecordWriter._open()`, `resume_points()`",
        "`open(path, 'w')` on a named pipe blocks until a reader appears; `resume_points` treats it as an empty file. "
        "Fix: refuse an existing output that is not a regular file (`path.exists() and not path.is_file()`) before "
        "opening it.",
        _id(r"output-fifo", r"resume-onto-fifo"),
    ),
    RootCause(
        "resume-foreign-file",
        "`--resume` trusts whatever file is at `-o`",
        "`src/ferkit/records.py: resume_points()`; `src/ferkit/api.py: run_analysis()`",
        "`resume_points` first *rewrites* the file (cutting what follows the last newline), then parses it with "
        "`read_records`, which raises raw `ValueError`/`KeyError`/`UnicodeDecodeError`/`ArrowInvalid` on a file "
        "ferkit did not write (records.py:228, :181, :241, :165); a text file that parses to no records is treated "
        "as empty and ferkit *appends* its records to it. Nothing checks that the existing records come from the "
        "same model/classes: resuming a CSV with `--model ferkit-gate` appends rows whose `p_*` columns do not match "
        "the header, and a JSONL file ends up with two models' records. Fix: before touching the file, validate it "
        "(CSV header equals the writer's fieldnames; every JSONL line a record with the FaceRecord keys; `model` "
        "equal to `analyzer.name`); refuse with InputError otherwise; wrap parse errors; only then truncate the "
        "half-written tail.",
        _id(r"resume-onto-", r"resume-with-other-model"),
    ),
    RootCause(
        "resume-state",
        "A resumed run differs from an uninterrupted one",
        "`src/ferkit/pipeline.py: Analyzer.iter_source()` (and `api.run_analysis` for the smoother state)",
        "`iter_source` filters frames with `f.index > start_after` *before* they reach the tracker and the smoother, "
        "so on `--resume` the first new frame gets a fresh detection (no optical-flow history: boxes differ by ~3 px) "
        "and the smoother starts from that frame's raw probabilities (smoothed probabilities differ by up to 0.2 for "
        "the following frames). Fix: restore the state: feed the skipped frames through `FaceTracker.update` "
        "(detection/flow only, no model), and seed the `Smoother` per face from the last written records' "
        "`smoothed_probabilities`, `smoothed_emotion` and timestamp (or re-score a window of frames before the "
        "resume point without writing them).",
        _id(r"resume-differs"),
    ),
    RootCause(
        "no-output-lock",
        "Nothing locks an output: two processes overwrite each other",
        "`src/ferkit/records.py: RecordWriter._open()`",
        "Both processes open `out.jsonl` with mode `w` and write their own records; both exit 0 and one run's "
        "records are lost (or lines interleave). Fix: take an exclusive non-blocking lock (`fcntl.flock` on the file "
        "or on `<out>.lock`) when the writer opens, and refuse the second run with InputError 'being written by "
        "another ferkit process'.",
        _id(r"two-writers"),
    ),
    RootCause(
        "channel-values",
        "Channel fields are not validated (non-finite, wrong types, bad probabilities)",
        "`src/ferkit/channels.py: read_channel()` and `_vector()`",
        "`read_channel` converts `timestamp`/`confidence` with `pd.to_numeric`, which lets ±inf and booleans through; "
        "`math.floor(inf / window)` then raises OverflowError in `sync_windows.index` (channels.py:157). Confidence "
        "NaN is replaced by 1.0, and inf/negative/>1 confidences are used as weights. `_vector` calls `float(v)` on "
        "every probability (channels.py:26): strings, None or nested objects raise ValueError/TypeError; negative, "
        "NaN, inf, bool, huge values and an empty dict are fused as they are (fused scores NaN or > 1). A CSV "
        "`probabilities` cell that is not JSON raises JSONDecodeError at channels.py:103 (outside the try). Fix: "
        "validate every row in `read_channel`: timestamp a finite real (not bool), confidence finite in [0, 1], "
        "probabilities a non-empty dict of finite reals in [0, 1] (renormalise or refuse sums far from 1), label a "
        "non-empty string; raise InputError naming the row.",
        _id(r"^fuse/channel-(timestamp-(inf|neg-inf|bool)|confidence|probs|csv-probabilities|csv-timestamp)"),
    ),
    RootCause(
        "channel-span",
        "A stray far-away timestamp builds a huge window table",
        "`src/ferkit/channels.py: sync_windows()`",
        "The table has one row per window from the earliest to the latest sample over all channels: one voice sample "
        "at t = 1e6 makes a million rows (then `fuse_channels` iterates them with `iterrows`), 1e9 or 1e30 exhaust "
        "memory building `rows`. Fix: cap the number of windows (InputError naming the channel and the offending "
        "timestamp), or build rows only for windows that hold samples.",
        _id(r"stray-timestamp-1e", r"channel-timestamp-huge-int"),
    ),
    RootCause(
        "channel-files",
        "Channel files that are not UTF-8 JSONL/CSV/Parquet raise raw exceptions",
        "`src/ferkit/channels.py: load_channel_file()`; `src/ferkit/records.py: load_jsonl()`, `read_records()`",
        "`load_channel_file` sniffs the format *before* `read_channel`'s try block: `load_jsonl` reads with strict "
        "UTF-8 (UnicodeDecodeError at records.py:241) and catches only JSONDecodeError (RecursionError on deep "
        "nesting); a first line that is not an object gives `'face_id' in 5` → TypeError (channels.py:250); "
        "`pd.read_csv(nrows=0)` raises UnicodeDecodeError/ParserError (channels.py:252); `read_records(…, "
        "'parquet')` raises ArrowInvalid (records.py:165). In `read_channel`, a line holding a JSON array makes "
        "`pd.DataFrame` raise TypeError (channels.py:95). Fix: one try around the whole load in `load_channel_file` "
        "(UnicodeDecodeError, RecursionError, TypeError, pandas ParserError, pyarrow errors → InputError), and require "
        "each JSONL line to be an object.",
        _id(
            r"^fuse/channel-(not-utf8|binary|utf16|deeply-nested|json-array|json-scalar|csv-unbalanced|not-parquet|"
            r"empty-parquet)"
        ),
    ),
    RootCause(
        "face-records",
        "ferkit records used as the face channel are not validated",
        "`src/ferkit/channels.py: face_channel()`; `src/ferkit/records.py: to_record_dicts()`, `read_records()` (CSV)",
        "`face_channel` computes `float(r['box'][2]) * float(r['box'][3])` and `float(r['timestamp'])` on whatever "
        "the file holds (channels.py:71-72): a null/short/string box, a NaN box (NaN → None in `to_record_dicts`), a "
        "string timestamp raise TypeError/IndexError/ValueError; inf timestamps reach `sync_windows` (OverflowError); "
        "`to_record_dicts` does `int(face_id)` (records.py:207); NaN probabilities become None and `float(None)` "
        "fails in `_vector`; negative probabilities are fused. A CSV with `face_id` but no `box_*` columns raises "
        "KeyError in `read_records` (records.py:181). Fix: validate each record in `face_channel` (box = 4 finite "
        "numbers, finite timestamp, int face_id, probabilities as for channels) and wrap `read_records` errors.",
        _id(r"^fuse/face-records-"),
    ),
    RootCause(
        "model-card",
        "Model cards are not validated (types, values, class list vs network)",
        "`src/ferkit/models.py: ModelCard.load()` and `OnnxModel.__init__()`",
        "`ModelCard.load` only checks that the keys exist. Then: `classes` as a string/None/list of lists/wrong "
        "length breaks record building (`zip(classes, probs, strict=True)` at pipeline.py:270, `classes[label]` "
        "IndexError at :265), duplicates and ints give records with collapsed or numeric class keys (exit 0); "
        "`OnnxModel` never compares the network's output count with the class list (a 2-output net with a 7-class "
        "card gets as far as the records). `mean`/`std` NaN, inf, 0, negative, 1e-300 feed NaN/inf/inverted inputs "
        "to the network (exit 0, a RuntimeWarning at best); strings/None/lists fail inside `_prepare` or onnxruntime. "
        "`sha256` as int/None crashes the mismatch message itself (`self.card.sha256[:12]`, models.py:189); "
        "`onnx_file` int/None fails at `folder / onnx_file` (models.py:183); `name` None/list ends up in "
        "records; in `calibrate`, std 0 makes every logit NaN, no face "
        "is left and `np.bincount` on the empty label array raises TypeError (api.py:339); a "
        "deeply nested card raises RecursionError (not caught at models.py:56). Fix: type- and range-check every "
        "field in `ModelCard.load` (classes: ≥ 2 distinct non-empty strings; input_size int ≥ 8; channels in "
        "gray/rgb; mean finite; std finite > 0 (scalar or per channel); sha256 64 hex chars; onnx_file a relative "
        "str; name non-empty str), catch RecursionError, and in `OnnxModel.__init__` check the logits output width "
        "== len(classes).",
        _id(
            r"^analyze/card-(classes|mean|std|sha256|name|onnx-file-(int|null)|file-deeply|seven-classes)",
            r"^calibrate/card-std-zero",
        ),
    ),
    RootCause(
        "weights-path",
        "`onnx_file` may point anywhere; the file is read before it is refused",
        "`src/ferkit/models.py: OnnxModel.__init__()`, `sha256_file()`; `src/ferkit/backends.py: read_spec()`, "
        "`SpecModel.__init__()`",
        "A card's `onnx_file` is joined to the folder without a containment check (`../weights/model.onnx`, an "
        "absolute path) and a spec's is `resolve()`d relative to the spec — both may name any file on the disk. The "
        "file is then hashed in full (`sha256_file`) before the hash comparison can refuse it: a 64 GiB file outside "
        "the folder hangs the run, `/proc/self/mem` raises a raw `OSError(EIO)` (models.py:34), and a file with the "
        "right hash outside the folder is loaded. Fix: require `onnx_file` to be a relative path that resolves "
        "inside the model folder / spec folder and is a regular file (not a symlink out, not a device), check its "
        "size against a cap before hashing, and wrap OSError from hashing into ModelError.",
        _id(r"onnx-file-(outside|proc-mem)"),
    ),
    RootCause(
        "calibration-file",
        "Calibration files: unchecked types and unbounded values",
        "`src/ferkit/calibration.py: Calibration.load()` and `check()`",
        "`Calibration.load` validates inside a try only the JSON parse and the constructor; then "
        "`np.asarray(cal.bias, dtype=float)` raises ValueError for strings (calibration.py:77) and "
        "`len(cal.classes)` TypeError for None (:80), outside the try. `model_sha256` of another type makes "
        "`check()`'s "
        "own message crash (`self.model_sha256[:12]`, :57). Finite but extreme values pass: bias 1e308 or "
        "temperature 1e-300/1e308 overflow float32 in `apply()` (inf − inf → NaN probabilities, or all-uniform), "
        "exit 0 with RuntimeWarnings. Fix: check types first (classes list of str, model_sha256 str, bias list of "
        "real numbers), bound |bias| (e.g. ≤ 100) and temperature (e.g. 1e-3..1e3), all inside the ModelError path.",
        _id(
            r"calibration-(bias|temperature|classes|sha)",
            r"calibration-file-(bias|temperature|classes|sha)",
            r"^evaluate/calibration-classes-null",
        ),
    ),
    RootCause(
        "spec-file",
        "Spec files: sha256 optional, mean/std not finite-checked",
        "`src/ferkit/backends.py: read_spec()`, `_norm()`",
        "`sha256` is in `OPTIONAL` and defaults to None, so a spec loads any ONNX file without an integrity check "
        "(unlike model folders, whose card must carry it). `_norm` accepts any `numbers.Real`: NaN and inf mean/std "
        "and negative std pass (only `std == 0` is refused), giving NaN or inverted inputs with exit 0. Fix: make "
        "`sha256` required (64 hex chars); require finite mean and finite positive std.",
        _id(r"^analyze/spec-(sha256-(missing|null)|mean|std)"),
    ),
    RootCause(
        "reliability",
        "Reliability mappings are not validated; all-zero reliabilities give all-zero probabilities",
        "`src/ferkit/fusion.py: load_reliability()`, `fuse_models()`",
        "A report without `results` is returned as the mapping unchecked: a list for a model raises AttributeError "
        "at fusion.py:113 (`.get`). When every reliability is 0, `fuse_models` leaves the fused row at 0 "
        "(`np.divide(…, where=total > 0)`), so records carry probabilities that sum to 0 and an arbitrary argmax. "
        "Fix: validate the mapping (dict of dicts of finite non-negative numbers) in `load_reliability`; refuse "
        "all-zero weights for a model (or fall back to soft fusion for that row) in `fuse_models`.",
        _id(r"^analyze/reliability-"),
    ),
    RootCause(
        "nothing-scored",
        "evaluate/calibrate crash when no image could be scored",
        "`src/ferkit/evaluation.py: predict_dataset()`/`evaluate()`; `src/ferkit/api.py: calibrate()`",
        "When every image is unreadable `predict_dataset` returns empty predictions and `metrics_block` calls "
        "`balanced_accuracy_score` on them: sklearn ValueError (evaluation.py:122). In calibrate, a model whose "
        "logits are all NaN (std 0) leaves no scored face; `np.bincount(truth)` on an empty float array raises "
        "TypeError at api.py:339. Fix: raise InputError('no image could be read/scored') in `predict_dataset` and "
        "in `_labelled_logits` when nothing is left.",
        _id(r"^(evaluate|calibrate)/dataset-(only-bad-images|no-face)", r"^evaluate/video-dataset-"),
    ),
    RootCause(
        "fer-csv",
        "`ferkit dataset` on a FER2013-style CSV: overflow and encoding errors escape",
        "`src/ferkit/sources.py: fer2013_csv_source()`, `_open_csv()`",
        "`np.array(row.split(), dtype=np.int64)` raises OverflowError for huge integers, and only "
        "(ValueError, TypeError) are caught (sources.py:162); the CSV is opened with strict `utf-8-sig` and the "
        "UnicodeDecodeError surfaces when `DictReader` reads the header (sources.py:141). Fix: catch OverflowError "
        "as a bad row; wrap decoding errors (in `_open_csv` and while iterating) into InputError.",
        _id(r"^dataset/csv-"),
    ),
    RootCause(
        "config-domains",
        "Training configs: non-finite / out-of-range values train to NaN weights",
        "`src/ferkit/train_config.py: _validate()`; `src/ferkit/train.py: _fit()` (divergence); "
        "`src/ferkit/export.py: export_run()` (NaN weights)",
        "The range checks are written `x > 0` / `x >= 0`, which inf passes (`optim.lr`, `weight_decay`, "
        "`head_lr_mult`, `augment.strength`, `distill.temperature`, `data.std`, `sources[].weight`), and several keys "
        "have no check at all (`optim.momentum`, `data.mean`, `imbalance.class_weight_power`, `seed`, an upper bound "
        "for `data.input_size`); NaN slips through checks written as refusals (`if src.weight <= 0`). The run "
        "then 'succeeds': loss "
        "NaN, `best.pt`/`model.onnx` with NaN weights, exit 0 (`ferkit export` also exports NaN weights). Finite "
        "extremes crash inside torch (lr 1e308: RuntimeError at train.py:311; momentum −5: ValueError at :198; seed "
        "2**70: ValueError at :113; negative seed: sklearn InvalidParameterError), and input_size 1e9 exhausts "
        "memory in `resize_crop`. `train-batch` reports the inf run as `ok`. Fix: `_validate` checks "
        "`math.isfinite` for every float and real ranges (momentum [0, 1), mean finite, std finite > 0, powers finite "
        "≥ 0, seed in [0, 2**32), input_size ≤ e.g. 512, threads ≤ cpu count); `_fit` stops with InputError when the "
        "epoch loss is not finite; `export_run` refuses non-finite weights.",
        _id(
            r"^train/config-(lr|weight-decay|momentum|head-lr|mean|std-inf|strength|class-weight|focal|distill|"
            r"source-weight|input-size|seed)",
            r"^train/set-lr-infinity",
            r"^train-batch/hostile-configs",
            r"checkpoint-weights-nan",
        ),
    ),
    RootCause(
        "run-name",
        "Run names may leave the output folder or be invalid file names",
        "`src/ferkit/train_config.py: _validate()` (name); `src/ferkit/train_data.py: prepare_data()` (mkdir)",
        "The name check is `not cfg.name or '/' in cfg.name`: `..` makes the run folder `<output>/..` (checkpoints, "
        "config.json, split.json written outside the output folder), `.` writes into the output folder itself, and "
        "NUL / over-long names reach `mkdir` (ValueError 'embedded null byte', OSError ENAMETOOLONG at "
        "train_data.py:188). Fix: the name must be one ordinary path component: not `.`/`..`, no `/`, `\\\\`, NUL or "
        "control characters, ≤ 100 characters (e.g. `re.fullmatch(r'[\\w][\\w.+-]{0,99}', name)`).",
        _id(r"^train/(config-name-(dotdot|dot|nul|too-long)|set-name-dotdot)"),
    ),
    RootCause(
        "train-late-errors",
        "train: problems found only after progress output (not one line)",
        "`src/ferkit/cli_train.py: run_config()`; `src/ferkit/train.py: train()`/`_fit()`; "
        "`src/ferkit/checkpoints.py: load_checkpoint()`",
        "`run_config` prints 'run folder …' and `prepare_data` prints the duplicate report and class counts before "
        "the referenced things are checked: missing sources, unknown taxonomy, `split_from`, `init_from`, "
        "`distill.teacher`, `imbalance.minority`, unknown backbone/options and a damaged `last.pt` are found later, "
        "so the error is the 2nd–6th stderr line. `torch.load(weights_only=True)` also prints a multi-line "
        "UserWarning about the pickle protocol for a foreign pickle. Fix: resolve and check every referenced file "
        "and name (sources exist, taxonomy loads, checkpoints load, backbone known and options accepted) in "
        "`load_config`/a `check_config` before any output; silence torch's warning inside `load_checkpoint`.",
        lambda r: r["verdict"] == "messy_error" and re.search(r"^(train|export)/", r["id"]) is not None,
    ),
    RootCause(
        "train-parsing",
        "Config and run-folder files parsed without error handling",
        "`src/ferkit/train_config.py: load_config()`; `src/ferkit/train.py: _check_resume()`; "
        "`src/ferkit/export.py: export_run()`, `model_from_checkpoint()`, `model_spec()`, `export_onnx()`",
        "`load_config` calls `path.read_text()` outside its try (UnicodeDecodeError at train_config.py:320). "
        "`_check_resume` parses `config.json` with bare `json.loads` and assumes a dict (train.py:154, :157). "
        "`export_run` parses `split.json`/`history.json`/`trainer.json` unguarded (export.py:114-115, :141) and "
        "`model_from_checkpoint`/`model_spec` index the checkpoint without checks (KeyError 'config'/'model', "
        "load_state_dict size mismatch, `input_size` as a string reaching `torch.zeros`). Fix: wrap each read in "
        "InputError with the file name; validate the checkpoint's `config` (the same `config_from_dict` as train) "
        "and catch `load_state_dict` RuntimeError.",
        _id(r"^train/(config-file-not-utf8|resume-config-json)", r"^export/trained-run-"),
    ),
    RootCause(
        "batch-overrides",
        "train-batch: a bad `--set` fails every config one by one (exit 1)",
        "`src/ferkit/cli_train.py: train_batch_cmd()`",
        "`--set optim.lrr=0.1` is only checked inside `run_config` for each config, so the sweep prints one error "
        "per config plus the JSON rows and exits 1. Fix: validate the overrides against the first config (or the "
        "RunConfig schema) before the loop and refuse with exit 2.",
        _id(r"^train-batch/set-on-batch"),
    ),
    RootCause(
        "group-pattern-redos",
        "A `group_pattern` regex can backtrack catastrophically",
        "`src/ferkit/sources.py: group_from_name()` / `train_config._validate()`",
        "`re.search(pattern, name)` runs a user-supplied pattern on every file name; `^(a+)+$` on a 30-character "
        "name of `a`s takes exponential time (the run hangs). Fix: bound the work (match against names ≤ N "
        "characters, refuse nested quantifiers in `_validate`, or use the `regex` module with a timeout).",
        _id(r"group-pattern-redos"),
    ),
]


OBSERVATIONS = [
    "`ferkit calibrate` without `-o` writes `calibration.json` into the model folder; for the bundled `ferkit` model "
    "that is the installed package (site-packages). The suite never does this (every calibrate case passes `-o` or "
    "a copied model folder) and a session fixture in `conftest.py` restores the bundled folders if a case ever "
    "writes there. Consider requiring `-o` for bundled models.",
    "`ferkit fuse` prints `fused state switches -1 times` when the state machine never left None "
    "(`int((states != states.shift()).sum()) - 1` on an empty series, cli.py `fuse`).",
    "`ferkit train` on small data leaks scikit-learn's `UserWarning: y_pred contains classes not in y_true` on "
    "stderr (`train.scores`; `evaluation.metrics_block` already silences the same warning).",
    "`torch.load(weights_only=True)` prints a multi-line `UserWarning` about the pickle protocol for any foreign "
    "pickle (`checkpoints.load_checkpoint`).",
    "`main()` reads `sys.argv` only; the suite patches it. `main(argv: list[str] | None = None)` would make in-process "
    "runs simpler.",
    "typer 0.29 coerces `'1.0'` to the int 1 for int options (`--seed=1.0` runs); `--trials=2.5` and `1e3` are "
    "refused. The suite treats integral floats as acceptable.",
]


def _cmd(r: dict) -> str:
    argv = r.get("argv")
    if argv is None:
        return "(custom driver)"
    if argv and isinstance(argv[0], list):  # a custom driver: several invocations
        return " ; ".join("ferkit " + shlex.join(a) for a in argv)
    return "ferkit " + shlex.join(argv) if argv else "ferkit"


def _what(r: dict) -> str:
    t = r.get("traceback")
    if r["detail"].startswith("exit 0, expected a usage error"):  # logs written before the message was shortened
        last = [ln for ln in r.get("stderr_tail", "").splitlines() if ln.strip()][-1:] or [""]
        return f"exit 0 where a refusal (exit 2) was expected; last stderr line {last[0][-200:]!r}"
    if r["verdict"] in ("traceback", "memory") and t:
        where = t["raised_at"] if t["raised_at"] == t["ferkit_at"] or not t["ferkit_at"] else (
            f"{t['ferkit_at']} → {t['raised_at']}")  # fmt: skip
        first = re.sub(r"[─╮╯ ]+$", "", t["first"]) or "Traceback"
        return f"`{first}` … `{t['last'][:160]}` raised at {where}"
    if r["verdict"] == "native_crash":
        return re.sub(r"; stderr tail: .*?what\(\):\s*", ": ", r["detail"])[:230]
    return r["detail"][:300]


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n").encode("utf-8", "backslashreplace").decode()


def hypothesis_failures(out_text: str) -> list[tuple[str, str, str]]:
    """(test id, falsifying input, first assertion line) of each failed Hypothesis property in pytest output."""
    res = []
    blocks = re.split(r"\n_{5,} (test_\S+) _{5,}\n", out_text)
    for name, body in zip(blocks[1::2], blocks[2::2], strict=False):
        if "Failing test case" not in body:
            continue
        msg = next((m.group(1) for m in re.finditer(r"^E\s+AssertionError: (.+)$", body, re.M)), "")
        tail = body[body.index("Failing test case") :].splitlines()[1:]
        params: dict[str, str] = {}
        key = None
        for line in tail:
            text = re.sub(r"^E\s?", "", line).strip()
            if not line.startswith("E") or text == ")":
                break
            m = re.match(r"^(\w+)=(.*)$", text)
            if m:
                key = m.group(1)
                params[key] = m.group(2)
            elif key:
                params[key] += " " + text
        wanted = ("value", "rows", "as_csv", "kind", "cut", "flips")
        shown = {k: v.rstrip(",") for k, v in params.items() if k in wanted}
        res.append((name, "; ".join(f"{k}={v}" for k, v in shown.items())[:600], msg[:300]))
    return res


def build(log: Path, out_text: str, seconds: str) -> str:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    failing = [r for r in rows if r["verdict"] != "pass"]
    by_rc: dict[str, list[dict]] = defaultdict(list)
    rc_of: dict[str, str] = {}
    for r in failing:
        key = next((rc.key for rc in ROOT_CAUSES if rc.match(r)), "unassigned")
        by_rc[key].append(r)
        rc_of[r["id"]] = key
    counts = Counter(r["verdict"] for r in rows)
    n_sub = sum(r["subprocess"] for r in rows)
    lines = [
        "# Fuzz catalogue: what the current code does with hostile input",
        "",
        "Generated by `tests/fuzz/catalogue.py` from a run of `tests/fuzz` against the current code "
        "(commit before any fix). Regenerate:",
        "",
        "```",
        "FERKIT_DATA=../shared/data FERKIT_FUZZ_LOG=/tmp/fuzz.jsonl PYTHONPATH=src python -m pytest tests/fuzz "
        "-p no:cacheprovider > /tmp/fuzz.out",
        "python tests/fuzz/catalogue.py /tmp/fuzz.jsonl /tmp/fuzz.out tests/fuzz/FAILURES.md",
        "```",
        "",
        f"**Suite:** {len(rows)} registered cases ({len(rows) - n_sub} in-process through `main()`, {n_sub} as a "
        f"subprocess) plus 11 Hypothesis property tests (9 numeric options, channel file contents, image bytes; "
        f"up to 30 examples each); **run time {seconds}** on 2 shared cores against the current code (hangs run to "
        "their bound: 6–15 s each).",
        "",
        "**Result:** " + ", ".join(f"{counts[k]} {k}" for k in ["pass", *CLASSES] if counts.get(k)) + ".",
        "",
        "The contract (see `registry.py`): exit 0 with correct output, or exit 2 with exactly one line on stderr; no "
        "traceback; within the case's time bound; every input file byte-identical afterwards. `silently_wrong` means "
        "exit 0 where the case expects a refusal, or an output check failed; `lost_or_duplicated` means inputs were "
        "changed, or records were mixed, duplicated or differ from an uninterrupted run.",
        "",
        "## Root causes, ranked by the number of failing cases a fix clears",
        "",
        "| # | root cause | cases | classes | fix belongs in |",
        "|---:|---|---:|---|---|",
    ]
    ranked = sorted((rc for rc in ROOT_CAUSES if by_rc.get(rc.key)), key=lambda rc: -len(by_rc[rc.key]))
    for i, rc in enumerate(ranked, 1):
        cls = Counter(r["verdict"] for r in by_rc[rc.key])
        lines.append(
            f"| {i} | [{rc.title}](#{rc.key}) | {len(by_rc[rc.key])} | "
            + ", ".join(f"{n} {k}" for k, n in cls.most_common())
            + f" | {rc.fix.split(';')[0]} |"
        )
    if by_rc.get("unassigned"):
        lines.append(f"| – | unassigned | {len(by_rc['unassigned'])} | | |")
    lines += ["", "## Failing cases by class", ""]
    for cls, title in CLASSES.items():
        group = [r for r in failing if r["verdict"] == cls]
        if not group:
            continue
        lines += [f"### {title}: {len(group)}", "", "| case | command | what happened | root cause |"]
        lines.append("|---|---|---|---|")
        for r in group:
            lines.append(
                f"| `{r['id']}` | `{_esc(_cmd(r))[:220]}` | {_esc(_what(r))} | [{rc_of[r['id']]}](#{rc_of[r['id']]}) |"
            )
        lines.append("")
    lines += ["## Root causes in detail", ""]
    for rc in ranked:
        group = by_rc[rc.key]
        lines += [
            f'<a id="{rc.key}"></a>',
            f"### {rc.title} — {len(group)} cases",
            "",
            f"**Fix belongs in:** {rc.fix}",
            "",
            rc.why,
            "",
            "Cases: " + ", ".join(f"`{r['id']}` ({r['verdict']})" for r in group),
            "",
        ]
    if by_rc.get("unassigned"):
        lines += ["### Unassigned", ""]
        lines += [f"- `{r['id']}` [{r['verdict']}] {_esc(_what(r))}" for r in by_rc["unassigned"]]
        lines.append("")
    lines += ["## Other observations (not counted as failures)", ""] + [f"- {o}" for o in OBSERVATIONS] + [""]
    hyp = hypothesis_failures(out_text)
    if hyp:
        lines += [
            "## Hypothesis properties that failed",
            "",
            "Generated inputs (derandomised, no shrinking); each failure is one more instance of a root cause above.",
            "",
            "| property | falsifying input | assertion |",
            "|---|---|---|",
        ]
        lines += [f"| `{n}` | `{_esc(v)}` | {_esc(m)} |" for n, v, m in hyp]
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    log, out, dest = (Path(a) for a in sys.argv[1:4])
    text = out.read_text(errors="replace")
    m = re.search(r"in ([\d.]+s(?: \([\d:]+\))?)", text.splitlines()[-1] if text else "")
    dest.write_text(build(log, text, m.group(1) if m else "?"))
    print(dest)
