"""The BiLSTM student of Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks": word embeddings -> one bidirectional LSTM layer -> max-pool over the real words -> ReLU MLP -> logits;
sentence pairs through the same encoder, joined as [u; v; u*v; |u-v|].

The backward direction must never read padding. paddle.nn.LSTM's sequence_length does that in Paddle, but
paddle2onnx 2.1 drops it from the ONNX LSTM node (the exported model then gives other logits). So the two
directions are two forward LSTMs, the second over each row reversed within its real length (a gather): padding
stays at the end of both, where it cannot reach a real position's state, and the max-pool does not care about
order. Same weights and arithmetic in training, Paddle Inference and ONNX.
"""
import paddle

from utils.adapters.word_base import (SiameseModel, WordAdapter, int64, lengths_and_positions, masked_max,
                                      real_mask, word_embedding)


def reverse_real(ids):
    """Each row's real words in reverse order, padding left at the end: [a b c 0] -> [c b a 0]."""
    lengths, t = lengths_and_positions(ids)
    return paddle.take_along_axis(ids, paddle.where(t < lengths, lengths - int64(1) - t, t), axis=1)


class BiLSTMText(paddle.nn.Layer):
    """ids [batch, len] -> [batch, 2 * hidden]: forward and backward states max-pooled over the real words."""

    def __init__(self, embedding, hidden_size):
        super().__init__()
        self.embedding = embedding
        emb_dim = embedding.weight.shape[1]
        self.forward_lstm = paddle.nn.LSTM(emb_dim, hidden_size)
        self.backward_lstm = paddle.nn.LSTM(emb_dim, hidden_size)

    def forward(self, ids):
        forward_states, _ = self.forward_lstm(self.embedding(ids))
        backward_states, _ = self.backward_lstm(self.embedding(reverse_real(ids)))
        # backward states are in reversed word order; the real positions are the same set, and max ignores order
        return masked_max(paddle.concat([forward_states, backward_states], axis=-1), real_mask(ids))


class BiLSTMAdapter(WordAdapter):
    arch = "bilstm"

    @classmethod
    def make_model(cls, encoder, num_labels, options, init):
        embedding = word_embedding(len(encoder), options["emb_dim"], init)
        text = BiLSTMText(embedding, options["hidden_size"])
        return SiameseModel(text, 2 * options["hidden_size"], options["mlp_size"], num_labels, options["dropout"],
                            encoder.pair)

    def shape(self):
        """hidden: --hidden_size, per direction (the pooled text vector is twice as wide). layers None: there are
        no transformer layers to match, so intermediate distillation is refused."""
        return {"layers": None, "hidden": self.options["hidden_size"], "heads": None}

    def flops(self, seq_len):
        """Per word and direction, the four gates' input and recurrent products (4H x (E + H) multiply-adds);
        then the MLP. Embedding lookups, gate nonlinearities and pooling are not counted."""
        e, h, m = self.options["emb_dim"], self.options["hidden_size"], self.options["mlp_size"]
        words = sum(self.text_lengths(seq_len))
        lstm = words * 2 * 4 * h * (e + h)
        mlp = self.model.hidden.weight.shape[0] * m + m * self.num_labels
        return 2 * (lstm + mlp)
