"""Model builders."""
from bert4keras_ext.models.bert import build_transformer_model, load_config, mlm_head_logits
from bert4keras_ext.models.inspection import attention_probabilities, intermediate_outputs

__all__ = ["attention_probabilities", "build_transformer_model", "intermediate_outputs",
           "load_config", "mlm_head_logits"]
