"""MobileBERT-style students: as deep as the teacher, as wide as the teacher between blocks (so every block's
output is matched without a projection), and thin inside (a bottleneck of B units around attention and the
feed-forward stack). PaddleNLP's MobileBertForSequenceClassification behind the BERT adapter, sharing the
teacher's WordPiece tokenizer; attention scores captured from the bottlenecked query/key projections.

    mobilebert-6l-384d-128b: 6 layers, 384 between blocks, a 128-unit bottleneck
"""
import re

from utils.adapters.bert import BertAdapter, BertEncoder
from utils.errors import UserError
from utils.models import HEAD_KEY, load_model, load_tokenizer

SHAPE = re.compile(r"^mobilebert-(\d+)l-(\d+)d-(\d+)b$")
FEEDFORWARD_NETWORKS = 4  # MobileBERT stacks 4 thin FFNs per layer to restore the FFN/attention balance


def is_shape(name):
    return bool(SHAPE.match(str(name).lower()))


class MobileBertAdapter(BertAdapter):
    arch = "mobilebert"

    @staticmethod
    def attention_parts(layer):
        return layer.attention.query, layer.attention.key, layer.attention.num_attention_heads

    def flops(self, seq_len):
        """2 x multiply-adds per token: input and shared query/key bottlenecks D->B, value D->B, query and key
        B->B, scores and context 2nB, attention output B->B, FFNs 2BF each, output bottleneck B->D; plus the
        trigram embedding projection 3E->D. Softmax, norms and lookups are not counted."""
        c = self.model.config
        d, b, f, k, e = (c.hidden_size, c.true_hidden_size, c.intermediate_size, c.num_feedforward_networks,
                         c.embedding_size)
        per_token = 4 * d * b + 3 * b * b + 2 * seq_len * b + 2 * k * b * f
        return 2 * seq_len * (c.num_hidden_layers * per_token + (3 if c.trigram_input else 1) * e * d)

    def shape(self):
        c = self.model.config
        return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads}

    @classmethod
    def load(cls, folder, num_labels=None, **label_info):
        from paddlenlp.transformers import MobileBertForSequenceClassification

        head = label_info.pop(HEAD_KEY, None)
        kwargs = dict(label_info, num_labels=num_labels, ignore_mismatched_sizes=True) if num_labels else {}
        model = load_model(MobileBertForSequenceClassification, folder, **kwargs)
        if head:
            setattr(model.config, HEAD_KEY, head)
        return cls(model, BertEncoder(load_tokenizer(folder)))

    def with_labels(self, num_labels):
        twin = super().with_labels(num_labels)
        return MobileBertAdapter(twin.model, self.encoder)


def student_heads(bottleneck, teacher_heads):
    """The most heads (each at least 16 wide) that divide the bottleneck and the teacher's head count, so the
    teacher's heads average into the student's in groups for attention transfer."""
    for heads in range(min(teacher_heads, bottleneck // 16), 0, -1):
        if bottleneck % heads == 0 and teacher_heads % heads == 0:
            return heads
    return 1


def fresh_student(name, teacher, num_labels):
    """A fresh MobileBERT student of shape `name` over the teacher's vocabulary and positions."""
    from paddlenlp.transformers import MobileBertConfig, MobileBertForSequenceClassification
    layers, width, bottleneck = (int(x) for x in SHAPE.match(name.lower()).groups())
    if min(layers, width, bottleneck) < 1 or bottleneck > width:
        raise UserError(f"student {name}: expected layers >= 1 and a bottleneck no wider than the blocks")
    t = teacher.model.config
    if width != t.hidden_size:
        print(f"note: {name} blocks are {width} wide, the teacher's {t.hidden_size}: matches need a projection")
    config = MobileBertConfig(
        vocab_size=t.vocab_size, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=student_heads(bottleneck, t.num_attention_heads), intermediate_size=4 * bottleneck,
        true_hidden_size=bottleneck, intra_bottleneck_size=bottleneck, embedding_size=bottleneck,
        num_feedforward_networks=FEEDFORWARD_NETWORKS, max_position_embeddings=t.max_position_embeddings,
        # MobileBERT's trigram input (each token's embedding concatenated with its neighbours') pads in a way
        # Paddle Inference's static graph reads differently from dygraph (a shape error at predict time): the
        # B-wide embeddings are projected to the block width token by token instead
        trigram_input=False,
        type_vocab_size=t.type_vocab_size, pad_token_id=t.pad_token_id, hidden_dropout_prob=0.1,
        classifier_activation=True, num_labels=num_labels)
    return MobileBertAdapter(MobileBertForSequenceClassification(config), teacher.encoder)
