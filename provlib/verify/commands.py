"""``python -m provlib keys | verify | export-suspect | serve``: the verification's command-line face (attribution
and TrainProVe).

The model stack is imported only when one of these commands runs, so ``python -m provlib --help`` stays fast.
"""
from __future__ import annotations

import argparse
import json

SUSPECT_KIND_HELP = {  # kept here (not imported) so --help does not load torch
    "pipeline": "a diffusers pipeline folder with safetensors weights",
    "lora": "a LoRA adapter (.safetensors file or folder) on the pipeline folder given as --base",
    "endpoint": "an HTTP endpoint: POST JSON {prompt, seeds, ...} -> PNG images (see provlib/verify/endpoint.py)",
}


SUSPECT_KIND_HELP.update({
    "classifier": "(TrainProVe) a classifier folder: classifier.json + classifier.safetensors",
    "classifier-endpoint": "(TrainProVe) an HTTP endpoint: POST {images: [base64 PNG]} -> {labels} or {logits}",
})


def add_commands(commands) -> None:
    keys = commands.add_parser("keys", help="write the owner's key file, before any suspect is seen",
                               description="Prepare the evidence once, before any suspect is seen, saved with a content "
                                           "hash and a creation time. attribution (after notebooks 01-03): key samples, "
                                           "feature space, δ0 and conf level of notebook 03, shadow innocents' conf. "
                                           "trainprove: the defender's fresh labelled images, their Grubbs batches and "
                                           "the shadow classifier's reference scores. watermark (the dataset owner): the "
                                           "mark's decoder, every licensee's message and the prompts asked for it.")
    keys.add_argument("--question", choices=("attribution", "trainprove", "watermark"), default="attribution")
    keys.add_argument("--preset", default="cpu")
    keys.add_argument("--source", required=True,
                      help="attribution: the owner's source model (e.g. v1-faces); trainprove: its generator (e.g. sd14); "
                           "watermark: the strategy its licensed copies used (trigger or image)")
    keys.add_argument("--out", required=True, help="folder to create (never overwritten)")
    keys.add_argument("-p", "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")

    kinds = "\n".join(f"  {k:19s} {v}" for k, v in SUSPECT_KIND_HELP.items())
    verify = commands.add_parser("verify", help="verify a suspect against a key file; writes verdict.json and report.html",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=f"Verify a suspect model against the owner's key file.\n\nsuspect kinds:\n{kinds}")
    verify.add_argument("--keys", required=True, help="the key file folder made by `keys`")
    verify.add_argument("--key-sha256", default=None, help="the hash published when the key file was made (checked)")
    verify.add_argument("--suspect-kind", required=True, choices=list(SUSPECT_KIND_HELP))
    verify.add_argument("--suspect", required=True, help="pipeline folder, LoRA adapter, classifier folder, or endpoint URL")
    verify.add_argument("--base", default=None, help="with --suspect-kind lora: the base pipeline folder; with an "
                        "image-only watermark key file: the public base the suspect was fine-tuned from (the test's reference)")
    verify.add_argument("--out", required=True, help="folder for verdict.json, report.html and the endpoint's answers")
    verify.add_argument("--query-budget", type=int, default=None, help="most images to obtain from (or send to) the suspect")
    verify.add_argument("--timeout", type=float, default=30.0, help="endpoint: seconds per request")
    verify.add_argument("--retries", type=int, default=3, help="endpoint: retries after a timeout or 5xx")
    verify.add_argument("--backoff", type=float, default=1.0, help="endpoint: first retry delay, doubled each time")

    export = commands.add_parser("export-suspect", help="write a zoo suspect the way models are published")
    export.add_argument("--question", choices=("attribution", "trainprove", "watermark"), default="attribution")
    export.add_argument("--preset", default="cpu")
    export.add_argument("--model-id", required=True,
                        help="a suspect of the preset: e.g. v1-faces_rho100_01, pixart_00 (trainprove), or a fine-tune of 06")
    export.add_argument("--as", dest="as_", choices=("pipeline", "lora"), default="pipeline",
                        help="attribution: a pipeline folder or base + LoRA adapter (trainprove: a classifier folder)")
    export.add_argument("--rank", type=int, default=64, help="LoRA rank")
    export.add_argument("--out", required=True)
    export.add_argument("-p", "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")

    serve = commands.add_parser("serve", help="serve a pipeline or classifier folder over HTTP (reference server)")
    served = serve.add_mutually_exclusive_group(required=True)
    served.add_argument("--pipeline", help="a pipeline folder: the text-to-image protocol")
    served.add_argument("--classifier", help="a classifier folder: the classifier protocol (labels only)")
    serve.add_argument("--logits", action="store_true", help="with --classifier: answer logits, not labels")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)


def dispatch(args, parse_assignment) -> None:
    from provlib.presets import load_preset

    def preset():
        inputs = "trainprove" if getattr(args, "question", "") == "trainprove" else "attribution"
        return load_preset(args.preset, inputs_for=inputs, **dict(parse_assignment(a) for a in args.assignments))

    def zoo():
        if args.question == "trainprove":
            from provlib.trainprove.zoo import TrainProVeZoo
            return TrainProVeZoo(preset())
        if args.question == "watermark":
            from provlib.watermark.zoo import WatermarkZoo
            return WatermarkZoo(preset())
        from provlib.attribution.queries import AttributionZoo
        return AttributionZoo(preset())

    if args.command == "keys":
        if args.question == "trainprove":
            from provlib.verify.trainprove import prepare_trainprove_keys as prepare
        elif args.question == "watermark":
            from provlib.verify.watermark import prepare_watermark_keys

            def prepare(zoo_, strategy, out):
                return prepare_watermark_keys(zoo_, out, strategy=strategy)
        else:
            from provlib.verify.attribution import prepare_attribution_keys as prepare
        key_file = prepare(zoo(), args.source, args.out)
        print(f"key file {key_file.folder}\nsha256 {key_file.sha256}\ncreated {key_file.created}")
    elif args.command == "verify":
        from provlib.verify.api import verify_suspect
        result = verify_suspect(args.keys, args.suspect_kind, args.suspect, args.out, base=args.base,
                                key_sha256=args.key_sha256, query_budget=args.query_budget, timeout=args.timeout,
                                retries=args.retries, backoff=args.backoff)
        shown = ("verdict", "conf", "conf_threshold", "p_value_vs_shadow_innocents", "accuracy", "named_licensee", "queries_spent",
                 "key_file_sha256", "report")
        print(json.dumps({k: result[k] for k in shown if k in result}, indent=1))
    elif args.command == "export-suspect":
        if args.question == "trainprove":
            from provlib.verify.trainprove import export_zoo_classifier
            written = export_zoo_classifier(zoo(), args.model_id, args.out)
        elif args.question == "watermark":
            from provlib.verify.watermark import export_zoo_licensee
            written = export_zoo_licensee(zoo(), args.model_id, args.out)
        else:
            from provlib.verify.api import export_zoo_suspect
            written = export_zoo_suspect(zoo(), args.model_id, args.out, args.as_, args.rank)
        print(json.dumps({k: v for k, v in written.items() if k != "spec"}, indent=1, default=str))
    elif args.command == "serve":
        serve(args)


def serve(args) -> None:
    from provlib.verify.server import images_answer, labels_answer, make_server, pipeline_drawer
    if args.pipeline:
        from provlib.core.models import load_pipeline
        answer, served = images_answer(pipeline_drawer(load_pipeline(args.pipeline, parameter="pipeline"))), args.pipeline
    else:
        from provlib.verify.trainprove import ClassifierFolderSuspect
        classifier = ClassifierFolderSuspect(args.classifier)
        answer, served = labels_answer(classifier.classify, label_only=not args.logits), args.classifier
    server = make_server(answer, args.host, args.port)
    print(f"serving {served} at http://{args.host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()
