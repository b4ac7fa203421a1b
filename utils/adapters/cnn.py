"""The CNN student of Kim (2014), "Convolutional Neural Networks for Sentence Classification": word embeddings ->
convolutions of several widths (num_filters each) -> ReLU -> max-pool over the windows inside the text -> ReLU MLP
-> logits; sentence pairs through the same encoder, joined as [u; v; u*v; |u-v|].

Each convolution is padded by width-1 zeros on the right, so every text, even one shorter than the widest
kernel, has at least one window. The windows that count are those wholly inside the text, or for a text shorter
than the kernel its first window (the text followed by zero vectors, which [PAD]'s zero embedding equals): so
the result never depends on how far a batch pads the text.
"""
import paddle
import paddle.nn.functional as F

from utils.adapters.word_base import SiameseModel, WordAdapter, int64, lengths_and_positions, word_embedding
from utils.adapters.words import kernel_sizes


class CNNText(paddle.nn.Layer):
    """ids [batch, len] -> [batch, num_filters * len(kernel_sizes)]."""

    def __init__(self, embedding, kernel_sizes, num_filters):
        super().__init__()
        self.embedding, self.kernel_sizes = embedding, tuple(kernel_sizes)
        emb_dim = embedding.weight.shape[1]
        self.convs = paddle.nn.LayerList([paddle.nn.Conv1D(emb_dim, num_filters, k, padding=[0, k - 1])
                                          for k in self.kernel_sizes])

    def forward(self, ids):
        x = self.embedding(ids).transpose([0, 2, 1])  # [batch, emb, len]
        lengths, t = lengths_and_positions(ids)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            # window t covers words t..t+k-1: inside the text when t <= length - k; window 0 always counts
            last = paddle.maximum(lengths - int64(k), int64(0))
            valid = (t <= last).astype(x.dtype).unsqueeze(1)  # [batch, 1, len]
            # after ReLU every value is >= 0, so zeroing the other windows leaves the max over valid ones exact
            pooled.append((F.relu(conv(x)) * valid).max(axis=2))
        return paddle.concat(pooled, axis=-1)


class CNNAdapter(WordAdapter):
    arch = "cnn"

    @classmethod
    def make_model(cls, encoder, num_labels, options, init):
        embedding = word_embedding(len(encoder), options["emb_dim"], init)
        sizes = kernel_sizes(options)
        text = CNNText(embedding, sizes, options["num_filters"])
        return SiameseModel(text, len(sizes) * options["num_filters"], options["mlp_size"], num_labels,
                            options["dropout"], encoder.pair)

    def shape(self):
        return {"layers": None, "hidden": len(kernel_sizes(self.options)) * self.options["num_filters"],
                "heads": None}

    def flops(self, seq_len):
        """Per word and kernel width k, one window of k x emb_dim x num_filters multiply-adds (the padded
        convolution computes one per position); then the MLP. Lookups, ReLU and pooling are not counted."""
        e, f, m = self.options["emb_dim"], self.options["num_filters"], self.options["mlp_size"]
        words = sum(self.text_lengths(seq_len))
        conv = words * sum(kernel_sizes(self.options)) * e * f
        mlp = self.model.hidden.weight.shape[0] * m + m * self.num_labels
        return 2 * (conv + mlp)
