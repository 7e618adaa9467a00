"""`assft campaign init|next|import-labels|finetune|status` and `assft simulate`."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.campaign.config import CAMPAIGN_STEPS_PER_ROUND, CampaignConfig
from assft.cli.common import console, default_of, default_query_of, recorded_theta0_of
from assft.finetune.config import FINETUNE_LR

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the campaign group and `simulate` to the root app."""
    root.add_typer(app, name="campaign", help="A real annotation campaign, one step at a time (resumable).")
    root.command("simulate")(simulate)


@app.command("init")
def init(
    model: Path = typer.Option(..., "--model", help="Start checkpoint θ (assft .pt)."),
    pool: Path = typer.Option(..., "--images", help="Unlabeled target pool: a folder of volumes (or a dataset)."),
    out: Path = typer.Option(..., "--out", help="Campaign directory to create."),
    budget: str = typer.Option(None, "--budget", show_default=default_of(CampaignConfig, "budget"),
                               help="Total volumes to annotate: N or P% of the pool."),
    rounds: int = typer.Option(None, "--rounds", min=1, show_default=default_of(CampaignConfig, "rounds"),
                               help="Rounds to spread the budget over."),
    strategy: str = typer.Option(None, "--strategy", show_default=default_of(CampaignConfig, "strategy"),
                                 help="Query strategy (see `assft query --help`)."),
    pretrained: Path = typer.Option(None, "--pretrained", help="θ0 for KD when it differs from --model."),
    test: Path = typer.Option(None, "--test", help="Labeled target test set to evaluate every round on (and round "
                                                   "0: the source and the adapted model)."),
    upper_model: Path = typer.Option(None, "--upper-model", help="A checkpoint whose test Dice is the ceiling (e.g. "
                                     "trained on the fully labeled target): status and report then give the gap "
                                     "closed."),
    config_file: Path = typer.Option(None, "--config", help="YAML with campaign.yaml fields (query, finetune, "
                                     "budget, rounds, ...); options given on the command line override it."),
    seed: int = typer.Option(None, "--seed", show_default=default_of(CampaignConfig, "seed"),
                             help="Seed of every random choice of the campaign."),
    adapt: str = typer.Option(None, "--adapt", show_default="none",
                              help="Round 0 before any label: adabn (BatchNorm statistics from the pool), tent, "
                                   "or auto (adabn for BatchNorm with running statistics, else by network kind)."),
    volume_cache: bool = typer.Option(None, "--volume-cache/--no-volume-cache",
                                      show_default=default_of(CampaignConfig, "cache_volumes"),
                                      help="Keep a memory-mapped preprocessed copy of each pool/test volume in "
                                           "OUT/volumes (disk: about the pool's size in float32) so later rounds "
                                           "do not re-read and re-normalise the files."),
    figures: bool = typer.Option(None, "--figures/--no-figures", show_default="on",
                                 help="Pictures of each round's picks in rounds/rNNN/query/figures/ (three planes "
                                      "through the region that drove each pick) and a contact sheet."),
    steps_per_round: int = typer.Option(None, "--steps-per-round", min=1, show_default=str(CAMPAIGN_STEPS_PER_ROUND),
                                        help="Optimizer steps of each round's fine-tuning (half labeled-only, half "
                                             "with pseudo-labels when SSFT is on)."),
    lr: float = typer.Option(None, "--lr", show_default=str(FINETUNE_LR), help="Fine-tuning learning rate (AdamW)."),
) -> None:
    """Create a campaign directory with a validated campaign.yaml and an empty ledger."""
    from assft.campaign.config import absolute_paths, input_paths, recipe_finetune
    from assft.cli.common import check_output_dir
    from assft.utils.paths import check_output_guard
    from assft.config import parse_config, read_yaml

    check_output_dir(out)
    raw = read_yaml(config_file) if config_file else {}
    if config_file:
        # Paths written in the file are relative to the file, like in `assft simulate` configs.
        for key in ("model", "pool", "pretrained", "test", "upper_model"):
            if isinstance(raw.get(key), str):
                raw[key] = str(config_file.parent / raw[key])
    # Only options actually given override the file; the defaults live in CampaignConfig.
    given = {"model": model, "pool": pool, "budget": budget, "rounds": rounds, "strategy": strategy,
             "pretrained": pretrained, "test": test, "seed": seed, "cache_volumes": volume_cache,
             "upper_model": upper_model}
    raw.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None})
    if adapt is not None:
        raw["adapt"] = {**(raw.get("adapt") or {}), "method": adapt}
    finetune = dict(raw.get("finetune") or {})
    if steps_per_round is not None:  # states the round's steps once: replaces any train.steps / ssft_steps
        finetune = {k: v for k, v in finetune.items() if k != "ssft_steps"}
        finetune["train"] = {k: v for k, v in (finetune.get("train") or {}).items() if k != "steps"}
        finetune["steps_per_round"] = steps_per_round
    if lr is not None:
        finetune["train"] = {**(finetune.get("train") or {}), "lr": lr}
    raw["finetune"] = recipe_finetune(finetune)  # the validated recipe under whatever the user set
    raw["oracle"] = "folder"  # a campaign created here is annotated by a person
    raw["figures"] = figures if figures is not None else raw.get("figures", True)  # the annotator sees why
    # Every field, and where the campaign may be written, is checked before θ0 is read: reading it loads torch, and
    # building it (for the default query) MONAI.
    check_output_guard(out, input_paths(absolute_paths(parse_config(raw, CampaignConfig, source=config_file))))
    raw.setdefault("pretrained", recorded_theta0_of(raw.get("model")))  # θ0 follows --model's provenance
    if "strategy" not in raw:  # nobody chose: the query the evidence supports for θ0's kind of network
        chosen = default_query_of(raw.get("pretrained") or raw.get("model"))
        if chosen is not None:
            raw["strategy"] = chosen[0]
            if chosen[0] != default_of(CampaignConfig, "strategy"):
                console.print(f"query: {chosen[0]} ({chosen[1]})")
    config = parse_config(raw, CampaignConfig, source=config_file)
    from assft.campaign.campaign import init_campaign  # after the checks above: it loads torch and MONAI

    init_campaign(out, config)  # type: ignore[arg-type]
    console.print(f"campaign ready in {out}; next: assft campaign next {out}")


def _check_campaign(campaign: Path) -> None:
    """Read campaign.yaml and ledger.json before the campaign code is imported.

    Why: the steps import torch and MONAI (seconds); a mistyped folder, a folder that is not a campaign or a broken
    ledger is then refused in a fraction of a second. The step reads both files again under its lock.
    """
    from assft.campaign.config import load_campaign_config
    from assft.campaign.ledger import Ledger

    load_campaign_config(campaign)
    Ledger.load(campaign)


@app.command("next")
def next_cmd(campaign: Path = typer.Argument(..., help="Campaign directory.")) -> None:
    """Score the pool and write the round's to-annotate list (to_annotate.csv and image links)."""
    _check_campaign(campaign)
    from rich.table import Table

    from assft.campaign.engine import next_round
    from assft.campaign.layout import QUERY_FILES, round_dir
    from assft.utils.distributed import join_process_group

    record = next_round(campaign)
    if not join_process_group().is_main:
        return  # under torchrun rank 0 alone writes and prints
    folder = round_dir(campaign, record.round)
    if record.round == 1 and (record.model or "").startswith("round0"):
        console.print(f"round 0: started from the pool-adapted model {record.model} (no labels used)")
    if record.round == 1:
        _print_round0(campaign)
    table = Table("rank", "case", "why", title=f"round {record.round}: annotate these {len(record.selected)} volumes")
    why = _rationale(folder / QUERY_FILES[1])
    for rank, case_id in enumerate(record.selected, 1):
        table.add_row(str(rank), case_id, why.get(case_id, ""))
    console.print(table)
    console.print(f"images: {folder / 'to_annotate'}; list: {folder / 'to_annotate.csv'}; scores: "
                  f"{folder / QUERY_FILES[0]}")
    if record.pre_annotations:
        console.print(f"pre-annotations (the current model's labels, to correct rather than draw from scratch): "
                      f"{folder / record.pre_annotations}; why each was picked: {folder / 'to_annotate' / 'why'}")
    console.print(f"put labels as ID.nii.gz in a folder, then: assft campaign import-labels {campaign} --labels DIR")


def _rationale(selection_json: Path) -> dict[str, str]:
    """Each pick's one-line rationale from the round's selection.json (empty when it cannot be read)."""
    import json

    try:
        picks = json.loads(selection_json.read_text())["selected"]
    except (OSError, ValueError, KeyError):
        return {}
    return {p["case_id"]: p.get("rationale", "") for p in picks}


def _print_round0(campaign: Path) -> None:
    """The round-0 test Dice (source, adapted, upper reference) when the campaign has a test set."""
    from assft.campaign.campaign import Campaign
    from assft.campaign.curve import campaign_curve

    meta = Campaign.open(campaign).meta
    shown = [f"{p.name} Dice {p.dice:.3f}" for p in campaign_curve(meta, []) if p.dice is not None]
    upper = (meta.upper_metrics or {}).get("mean_dice")
    shown += [f"upper reference Dice {upper:.3f}"] if upper is not None else []
    if shown:
        console.print("round 0 on the test set: " + ", ".join(shown))


@app.command("import-labels")
def import_labels_cmd(campaign: Path = typer.Argument(..., help="Campaign directory."),
                      labels: Path = typer.Option(..., "--labels", help="Folder with ID.nii.gz for each queried case.")
                      ) -> None:
    """Validate the annotator's labels (shape, affine, values, NaN) and record them; invalid input changes nothing."""
    _check_campaign(campaign)
    from assft.campaign.engine import import_labels

    record = import_labels(campaign, labels)
    console.print(f"round {record.round}: imported {len(record.labels_received or [])} labels; next: "
                  f"assft campaign finetune {campaign}")


@app.command("finetune")
def finetune_cmd(campaign: Path = typer.Argument(..., help="Campaign directory."),
                 steps_per_round: int = typer.Option(None, "--steps-per-round", min=1,
                                                     help="Optimizer steps of this and later rounds (written to "
                                                          "campaign.yaml; default: what campaign.yaml says)."),
                 lr: float = typer.Option(None, "--lr", help="Fine-tuning learning rate of this and later rounds "
                                                             "(written to campaign.yaml).")) -> None:
    """Selective semi-supervised fine-tuning on the labels so far, then evaluation on the test set if any."""
    _check_campaign(campaign)
    from assft.campaign.engine import finetune_round

    if steps_per_round is not None or lr is not None:
        _change_recipe(campaign, steps_per_round, lr)
    record = finetune_round(campaign)
    dice = (record.metrics or {}).get("mean_dice")
    n_pseudo = sum(1 for p in record.pseudo_labels if p["selected"])
    text = f"round {record.round}: fine-tuned with {record.labeled_total} labeled + {n_pseudo} pseudo-labeled"
    console.print(text + (f"; test Dice {dice:.3f}" if dice is not None else ""))


@app.command("extend")
def extend_cmd(campaign: Path = typer.Argument(..., help="Campaign directory."),
               rounds: int = typer.Option(..., "--rounds", min=1, help="Rounds to add."),
               budget: str = typer.Option(None, "--budget", help="Volumes the new rounds label: N or P% of the pool "
                                                                 "(default: --rounds times the last round's share).")
               ) -> None:
    """Add rounds (and volumes) to a campaign whose plan is spent; campaign.yaml and the ledger record them."""
    _check_campaign(campaign)
    from assft.campaign.extend import extend_campaign

    plan = extend_campaign(campaign, rounds, budget)
    resumed = " (finished an interrupted extension)" if plan["resumed"] else ""
    console.print(f"plan: {plan['budget_total']} volumes over {plan['rounds']} rounds "
                  f"({', '.join(map(str, plan['per_round']))} a round){resumed}; next: assft campaign next {campaign}")


def _change_recipe(campaign: Path, steps_per_round: int | None, lr: float | None) -> None:
    """Write the new round budget / learning rate into campaign.yaml (validated first: a bad value changes nothing)."""
    from assft.campaign.campaign import Campaign
    from assft.campaign.config import save_campaign_config, with_finetune_steps
    from assft.campaign.ledger import campaign_lock
    from assft.errors import CampaignError

    with campaign_lock(campaign):
        opened = Campaign.open(campaign)
        before = opened.config
        after = with_finetune_steps(before, steps_per_round, lr)
        last = opened.last()
        if last is None or last.status != "labeled":  # the step would refuse: change nothing
            where = "no round has started" if last is None else f"round {last.round} is at step '{last.status}'"
            raise CampaignError(f"--steps-per-round/--lr apply to a round to fine-tune, but {where}.",
                                path=campaign, fix="import the round's labels first, or edit campaign.yaml")
        if after != before:
            save_campaign_config(campaign, after)
            console.print(f"campaign.yaml: fine-tuning {_recipe_text(before)} -> {_recipe_text(after)} "
                          "(this and later rounds)")


def _recipe_text(config: CampaignConfig) -> str:
    stage1, stage3 = config.finetune.stage_steps()
    return f"{stage1 + stage3} steps a round at lr {config.finetune.train.lr:g}"


@app.command("status")
def status_cmd(campaign: Path = typer.Argument(..., help="Campaign directory.")) -> None:
    """Rounds done, volumes labeled, Dice per round, and the next step."""
    _check_campaign(campaign)
    from rich.table import Table

    from assft.campaign.status import campaign_status

    status = campaign_status(campaign)
    meta = status["meta"]
    table = Table("round", "status", "selected (rank order)", "labels received", "labeled total",
                  "pseudo-labels kept", "test Dice",
                  title=f"{meta.get('strategy')} campaign: {meta.get('budget_total')} of {meta.get('pool_size')} "
                        f"volumes over {meta.get('rounds')} rounds")
    for row in status["rounds"]:
        dice = row["mean_dice"]
        received = row["labels_received"]
        table.add_row(str(row["round"]), row["status"], ", ".join(row["selected"]) or "-",
                      f"{len(received)}/{len(row['selected'])}" if received is not None else "-",
                      str(row["labeled_total"] or "-"), str(row["n_pseudo"]) if row["status"] in
                      ("finetuned", "evaluated") else "-", f"{dice:.3f}" if dice is not None else "-")
    console.print(table)
    _print_curve(status)
    console.print(f"next: {status['next_step']}")


def _print_curve(status: dict) -> None:
    """Source -> adapted -> each round on the test set, the AUBC and the gap closed (when the campaign has them)."""
    from rich.table import Table

    points, aubc, meta = status["curve"], status["aubc"], status["meta"]
    if not points:
        console.print("test Dice: none yet (the campaign has no --test set, or round 0 was not evaluated)")
        return
    with_gap = any(p.gap_closed is not None for p in points)
    table = Table("model", "labeled", "test Dice", *(["gap closed"] if with_gap else []),
                  title="did it get better? (test set)")
    for p in points:
        table.add_row(p.name, str(p.labeled), "-" if p.dice is None else f"{p.dice:.3f}",
                      *([("-" if p.gap_closed is None else f"{p.gap_closed:.2f}")] if with_gap else []))
    console.print(table)
    upper = (meta.get("upper_metrics") or {}).get("mean_dice")
    console.print(("AUBC -: needs two evaluated points" if aubc is None else f"AUBC {aubc:.3f}")
                  + ("" if upper is None else f"; upper reference Dice {upper:.3f} (gap closed = (Dice - source) / "
                                              "(upper - source))"))


def simulate(config: Path = typer.Option(..., "--config", help="Experiment YAML (strategies x seeds x domains)."),
             jobs: int = typer.Option(1, "--jobs", min=1,
                                      help="Campaigns run at once in worker processes (e.g. one per core)."),
             executor: str = typer.Option("process", "--executor",
                                          help="process (this machine, --jobs at once) or ray (each campaign a Ray "
                                               "task; pip install 'assft[ray]')."),
             address: str = typer.Option(None, "--address",
                                         help="Ray cluster to join (e.g. auto, ray://HEAD:10001); default: a local "
                                              "Ray instance on this machine."),
             cpus_per_campaign: float = typer.Option(1.0, "--cpus-per-campaign",
                                                     help="Ray: CPUs (and torch threads) per campaign task."),
             gpus_per_campaign: float = typer.Option(0.0, "--gpus-per-campaign",
                                                     help="Ray: GPUs per campaign task (fractions share a GPU)."),
             ) -> None:
    """Simulated campaigns with the ground truth as the annotator, plus lower/upper bounds (resumable)."""
    from assft.campaign.experiment import load_simulation_config
    from assft.errors import ConfigError

    # Options and the experiment file are checked before the simulation loop (torch, MONAI) is imported.
    if executor not in ("process", "ray"):
        raise ConfigError(f"--executor {executor!r} is not known.", fix="use --executor process or --executor ray")
    if executor != "ray" and (address or cpus_per_campaign != 1.0 or gpus_per_campaign):
        raise ConfigError("--address, --cpus-per-campaign and --gpus-per-campaign only apply to --executor ray.",
                          fix="add --executor ray, or drop them")
    if cpus_per_campaign <= 0 or gpus_per_campaign < 0:
        raise ConfigError(f"--cpus-per-campaign must be > 0 and --gpus-per-campaign >= 0, got {cpus_per_campaign} "
                          f"and {gpus_per_campaign}.", fix="e.g. --cpus-per-campaign 1 --gpus-per-campaign 0.25")
    if executor == "ray" and jobs != 1:
        raise ConfigError("--jobs is for --executor process; Ray runs as many campaigns as its CPUs allow.",
                          fix="drop --jobs, or set --cpus-per-campaign")
    experiment = load_simulation_config(config)
    from assft.campaign.simulate import run_simulation

    ray_options = {"address": address, "cpus_per_campaign": cpus_per_campaign,
                   "gpus_per_campaign": gpus_per_campaign} if executor == "ray" else None
    dirs = run_simulation(experiment, on_campaign=lambda d: console.print(f"finished {d}"), jobs=jobs,
                          executor=executor, ray_options=ray_options)
    console.print(f"{len(dirs)} campaigns in {experiment.out}; report: assft report {experiment.out} --out REPORT")
