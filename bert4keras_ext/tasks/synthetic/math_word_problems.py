"""Arithmetic word problems in ape210k's JSON-lines format, generated with a seed.

Each item is `{"id", "original_text", "equation", "ans"}` like ape210k: sums, differences,
rates, percentages, fractions of a whole and chickens-and-rabbits, each with several wordings
and varied numbers. The real dataset cannot be downloaded here; this stands in for it.
`language="zh"` (default) words them in Chinese like ape210k; `language="en"` in English, for
pretrained models whose vocabulary has few Chinese characters (all-MiniLM-L6-v2).

    python -m bert4keras_ext.tasks.synthetic.math_word_problems --count 20000 --out train.json
"""
import argparse
import json
import random

from bert4keras_ext.arithmetic import safe_eval
from bert4keras_ext.tasks.ape210k import normalize_expression

# Per language: people, (thing, Chinese measure word) pairs, and the wordings of each problem
# kind as format strings over the numbers its template draws.
WORDS = {
    "zh": {
        "names": ["小明", "小红", "小刚", "小丽", "王叔叔", "李阿姨", "张老师", "小华"],
        "things": [("苹果", "个"), ("铅笔", "支"), ("故事书", "本"), ("气球", "个"),
                   ("邮票", "张")],
        "sum": ["{name}有{a}{unit}{thing}，又买了{b}{unit}，现在一共有多少{unit}{thing}？",
                "{name}原来有{a}{unit}{thing}，别人送给他{b}{unit}，{name}现在有几{unit}？",
                "一个盒子里有{a}{unit}{thing}，另一个盒子里有{b}{unit}，两个盒子一共有多少{unit}？"],
        "difference": ["一根绳子长{a}米，用去了{b}米，还剩多少米？",
                       "果园里有{a}棵树，砍掉了{b}棵，还剩多少棵？",
                       "{name}有{a}元钱，花了{b}元，还剩多少元？"],
        "product": ["一辆汽车每小时行驶{speed}千米，{hours}小时行驶多少千米？",
                    "一台机器每小时生产{speed}个零件，{hours}小时生产多少个零件？"],
        "quotient": ["甲乙两地相距{distance}千米，一辆车每小时行{speed}千米，需要几小时到达？",
                     "一批零件共{distance}个，每小时加工{speed}个，需要多少小时加工完？"],
        "discount": ["一件商品原价{price}元，降价{percent}%后售价多少元？",
                     "一台电视机原价{price}元，现在打折降低了{percent}%，现价是多少元？"],
        "share": ["学校有{price}名学生，其中{percent}%是女生，女生有多少名？",
                  "一批货物重{price}吨，运走了{percent}%，运走了多少吨？"],
        "fraction": ["一本书有{whole}页，第一天看了全书的(1/{parts})，第一天看了多少页？",
                     "一堆沙子重{whole}千克，用去了(1/{parts})，用去了多少千克？"],
        "rabbits": ["鸡兔同笼，共有{heads}个头，{feet}只脚，兔有多少只？"],
        "chickens": ["笼子里有若干只鸡和兔，从上面数有{heads}个头，"
                     "从下面数有{feet}只脚，鸡有多少只？"],
    },
    "en": {
        "names": ["tom", "mary", "jack", "lucy", "uncle wang", "aunt li", "mr. zhang", "anna"],
        "things": [(thing, "") for thing in ["apples", "pencils", "books", "balloons", "stamps"]],
        "sum": ["{name} has {a} {thing} and buys {b} more. how many {thing} now?",
                "{name} had {a} {thing} and was given {b}. how many {thing} does {name} have?",
                "one box holds {a} {thing} and another {b}. how many {thing} in both boxes?"],
        "difference": ["a rope is {a} meters long and {b} meters are used. how many are left?",
                       "an orchard has {a} trees and {b} are cut down. how many remain?",
                       "{name} has {a} dollars and spends {b}. how many dollars are left?"],
        "product": ["a car drives {speed} km per hour. how far does it go in {hours} hours?",
                    "a machine makes {speed} parts per hour. how many parts in {hours} hours?"],
        "quotient": ["two towns are {distance} km apart and a car drives {speed} km per hour. "
                     "how many hours does the trip take?",
                     "{distance} parts are made at {speed} per hour. how many hours are needed?"],
        "discount": ["an item costs {price} dollars and the price drops by {percent}%. "
                     "what is the new price?",
                     "a tv was {price} dollars and is now {percent}% cheaper. what does it cost?"],
        "share": ["a school has {price} students and {percent}% are girls. how many girls?",
                  "{price} tons of goods, {percent}% are shipped. how many tons are shipped?"],
        "fraction": ["a book has {whole} pages and (1/{parts}) is read on day one. "
                     "how many pages are read?",
                     "a pile of sand weighs {whole} kg and (1/{parts}) is used. how many kg?"],
        "rabbits": ["chickens and rabbits share a cage with {heads} heads and {feet} feet. "
                    "how many rabbits?"],
        "chickens": ["a cage of chickens and rabbits has {heads} heads and {feet} feet. "
                     "how many chickens?"],
    },
}


def _sum(rng):
    a, b = rng.randint(2, 500), rng.randint(2, 500)
    return "sum", {"a": a, "b": b}, f"x={a}+{b}"


def _difference(rng):
    a = rng.randint(50, 900)
    b = rng.randint(1, a - 1)
    return "difference", {"a": a, "b": b}, f"x={a}-{b}"


def _rate(rng):
    speed, hours = rng.randint(20, 120), rng.randint(2, 12)
    if rng.random() < 0.5:
        return "product", {"speed": speed, "hours": hours}, f"x={speed}*{hours}"
    distance = speed * hours
    return "quotient", {"speed": speed, "distance": distance}, f"x={distance}/{speed}"


def _percentage(rng):
    price, percent = rng.randint(2, 60) * 10, rng.choice([5, 10, 15, 20, 25, 30, 40, 50])
    numbers = {"price": price, "percent": percent}
    if rng.random() < 0.5:
        return "discount", numbers, f"x={price}*(1-{percent}%)"
    return "share", numbers, f"x={price}*{percent}%"


def _fraction(rng):
    parts = rng.choice([2, 3, 4, 5, 8, 10])
    whole = parts * rng.randint(3, 60)
    return "fraction", {"whole": whole, "parts": parts}, f"x={whole}*1/{parts}"


def _chickens_and_rabbits(rng):
    chickens, rabbits = rng.randint(1, 40), rng.randint(1, 40)
    heads, feet = chickens + rabbits, 2 * chickens + 4 * rabbits
    numbers = {"heads": heads, "feet": feet}
    if rng.random() < 0.5:
        return "rabbits", numbers, f"x=({feet}-2*{heads})/2"
    return "chickens", numbers, f"x=(4*{heads}-{feet})/2"


TEMPLATES = [_sum, _difference, _rate, _percentage, _fraction, _chickens_and_rabbits]


def generate(count, seed=0, language="zh"):
    """`count` items in ape210k's format; the answer is the equation's value."""
    if language not in WORDS:
        raise ValueError(f"`language` must be one of {sorted(WORDS)}, received {language!r}.")
    words, rng = WORDS[language], random.Random(seed)
    items = []
    for index in range(count):
        kind, numbers, equation = rng.choice(TEMPLATES)(rng)
        thing, unit = rng.choice(words["things"])
        text = rng.choice(words[kind]).format(name=rng.choice(words["names"]), thing=thing,
                                              unit=unit, **numbers)
        value = round(safe_eval(normalize_expression(equation[2:])), 6)
        answer = str(int(value)) if value == int(value) else str(value)
        items.append({"id": str(index), "original_text": text, "equation": equation,
                      "ans": answer})
    return items


def write_jsonl(items, path):
    with open(path, "w", encoding="utf-8") as file:
        for item in items:
            file.write(json.dumps(item, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--language", choices=sorted(WORDS), default="zh")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    write_jsonl(generate(args.count, args.seed, args.language), args.out)
