"""A bag-of-words linear student, like spaCy's TextCatBOW: each word and each pair of adjacent words adds its row
of a [features, num_labels] table to the logits (plus a bias). Tiny, and very fast.

Rows: the vocabulary's words (text_a), then for pairs the vocabulary again (text_b's words, so the model knows
which text a word came from), then num_buckets hashed bigrams. Bigram ids are computed inside the model from
the word ids ((x * PRIME + y) mod num_buckets, int64), so the exported graph takes only word ids; text_b hashes
its ids after the same offset as its unigrams, which salts its bigrams. A bigram exists only where both words
are real.
"""
import paddle

from utils.adapters.word_base import WordAdapter, int64, real_mask

PRIME = 1000003  # x * PRIME + y stays far below 2**63 for any vocabulary


class BoWModel(paddle.nn.Layer):
    def __init__(self, vocab_size, num_buckets, num_labels, pair):
        super().__init__()
        self.vocab_size, self.num_buckets, self.pair = vocab_size, num_buckets, pair
        self.bigram_start = vocab_size * (2 if pair else 1)
        init = paddle.nn.initializer.Normal(0.0, 0.01)  # near zero, the natural start of a linear model
        self.table = paddle.nn.Embedding(self.bigram_start + num_buckets, num_labels,
                                         weight_attr=paddle.ParamAttr(initializer=init))
        self.bias = self.create_parameter([num_labels], is_bias=True)

    def features(self, ids, offset):
        """Sum of the rows of one text's words and bigrams; offset moves text_b to its own rows."""
        # the next word of each position, padding after the last column: [B, len + 1] sliced, never empty
        following = paddle.concat([ids, ids[:, :1] * int64(0)], axis=1)[:, 1:]
        words, after = ids + int64(offset), following + int64(offset)  # tensor constants: see int64()
        bigrams = paddle.remainder(words * int64(PRIME) + after, int64(self.num_buckets))
        rows = paddle.concat([words, bigrams + int64(self.bigram_start)], axis=1)
        real = real_mask(ids)
        mask = paddle.concat([real, real * real_mask(following)], axis=1)
        return (self.table(rows) * mask.unsqueeze(-1)).sum(axis=1)

    def forward(self, ids_a, ids_b=None):
        logits = self.features(ids_a, 0) + self.bias
        if self.pair:
            logits = logits + self.features(ids_b, self.vocab_size)
        return logits

    def twin(self, num_labels):
        """The whole model is the classifier: a twin shares the vocabulary, not a parameter."""
        return BoWModel(self.vocab_size, self.num_buckets, num_labels, self.pair)


class BoWAdapter(WordAdapter):
    arch = "bow"
    uses_vectors = False

    @classmethod
    def make_model(cls, encoder, num_labels, options, init):
        return BoWModel(len(encoder), options["num_buckets"], num_labels, encoder.pair)

    def shape(self):
        """No hidden layer: the text representation is the summed feature rows, num_labels wide."""
        return {"layers": None, "hidden": self.num_labels, "heads": None}

    def flops(self, seq_len):
        """Each text of n words has n unigram and n - 1 bigram rows; summing all rows and the bias is one
        addition per row and label."""
        return self.num_labels * sum(2 * n - 1 for n in self.text_lengths(seq_len))
