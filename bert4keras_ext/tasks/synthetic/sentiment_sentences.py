"""Short Chinese product reviews with a sentiment label (0 negative, 1 positive), generated.

Stands in for the sentiment corpus of the Conditional LayerNorm post's generation demo
(https://kexue.fm/archives/7124); each item is
`(text, label)`. The lexicons let the example measure whether generated text follows the
requested class.
"""
import random

POSITIVE = ["很好", "非常满意", "质量不错", "物超所值", "推荐购买", "喜欢", "好用", "漂亮"]
NEGATIVE = ["很差", "非常失望", "质量太差", "不值这个价", "不推荐", "讨厌", "难用", "丑"]
SUBJECTS = ["这件衣服", "这个手机", "这本书", "这家餐厅", "这款耳机", "这双鞋", "这台电脑"]
ENDINGS = ["。", "！", "，下次还会再来。", "，就这样吧。"]


def generate(count, seed=0):
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.sample(POSITIVE if label else NEGATIVE, 2)
        text = f"{rng.choice(SUBJECTS)}{words[0]}，{words[1]}{rng.choice(ENDINGS)}"
        items.append((text, label))
    return items


def follows_label(text, label):
    """The text uses the requested sentiment's words and none of the other's."""
    wanted, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    return any(w in text for w in wanted) and not any(w in text for w in other)
