"""The augmented rows of some sentences, read from an augmentation file of a larger set (a validation slice's
transfer text from the full training set's Tang rows, without augmenting again).

    python bench/augmented_rows.py --augmented out/real/full_aug/train_aug_tang3.tsv \
        --of out/real/recipes_clean/glue/SST-2/train.tsv --of out/real/recipes_clean/glue/SST-2/transfer.txt \
        --drop_fragments_of out/real/recipes_clean/glue/SST-2/dev.tsv --output out/real/recipes_clean/aug_rows.txt

data_augmentation.py writes each original row followed by its augmented rows, in the source's order. The group of
a sentence of the --of files is kept, any other group dropped (so the augmented rows of a validation sentence never
reach the transfer text). Rows are matched as written (SST-2's sentences end in a space; an n-gram sample of a whole
short sentence does not). The first line of a TSV is its header. Writes the kept groups' augmented rows, sentence
column only and stripped, one per line, under a temporary name renamed when complete.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.errors import UserError, exits_cleanly  # noqa: E402
from utils.files import atomic_file, text_lines  # noqa: E402


def sentences(path):
    """The first column of every line, as written (a .tsv's header skipped); utils.files.text_lines names a
    missing file or a line that is not UTF-8."""
    lines = [line for _, line in text_lines(path, "UTF-8 text, one sentence per line or a TSV")]
    return [line.split("\t")[0] for line in (lines[1:] if path.endswith(".tsv") else lines)]


def kept_rows(augmented, originals, wanted):
    """The augmented rows (in file order, stripped) of the groups whose original is in `wanted` (stripped texts).
    `originals`: the augmented file's source sentences in order. The row equal to the next one starts its group;
    but an n-gram sample of one sentence can equal the next, shorter training phrase, so when a group's own
    original turns up inside it (augmentation never repeats a row's own original), the rows since that early start
    go back to the group before. Returns (rows, how many source sentences were found in order)."""
    groups, following = [], 0  # [original index, rows]
    for row in augmented:
        if following < len(originals) and row == originals[following]:
            groups.append([following, []])
            following += 1
        elif len(groups) > 1 and row == originals[groups[-1][0]]:
            early = groups.pop()
            groups[-1][1] += [originals[early[0]]] + early[1]
            groups.append([early[0], []])
        elif groups and row.strip():
            groups[-1][1].append(row)
    rows = [row.strip() for index, rows in groups if originals[index].strip() in wanted for row in rows]
    return rows, following


@exits_cleanly
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--augmented", required=True, help="data_augmentation.py's output (originals included)")
    p.add_argument("--source", default="../shared/data/glue/SST-2/train.tsv",
                   help="the file that was augmented: its sentences start the groups (default SST-2's train.tsv)")
    p.add_argument("--of", action="append", required=True, help="keep the augmented rows of these sentences")
    p.add_argument("--drop_fragments_of", action="append", default=[],
                   help="a validation slice's dev.tsv: rows of 4 words or more inside one of its sentences, or "
                        "holding one, are dropped, as utils.demo drops them from the slice's transfer text")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    held_out = [s.strip() for path in args.drop_fragments_of for s in sentences(path)]  # every file read first
    wanted = {s.strip() for path in args.of for s in sentences(path)}
    originals = sentences(args.source)
    rows, found = kept_rows(sentences(args.augmented), originals, wanted)
    if found != len(originals):
        raise UserError(f"holds only the first {found} of the {len(originals)} sentences of {args.source} in their "
                        "order: is --source the file it was augmented from?", args.augmented)
    if args.drop_fragments_of:
        from types import SimpleNamespace

        from utils.demo import drop_fragments
        kept = drop_fragments([SimpleNamespace(text_a=row) for row in rows], held_out)
        print(f"{len(rows) - len(kept)} rows inside or holding a sentence of {', '.join(args.drop_fragments_of)} "
              "dropped")
        rows = [e.text_a for e in kept]
    with atomic_file(args.output) as f:
        f.write("".join(row + "\n" for row in rows))
    print(f"wrote {args.output}: {len(rows)} augmented rows of {len(wanted)} sentences")
    return len(rows)


if __name__ == "__main__":
    main()
