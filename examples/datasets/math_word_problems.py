"""Chinese arithmetic word problems in ape210k's JSON-lines format, generated with a seed.

Each item is `{"id", "original_text", "equation", "ans"}` like ape210k: sums, differences,
rates, percentages, fractions of a whole and chickens-and-rabbits, each with several wordings
and varied numbers. The real dataset cannot be downloaded here; this stands in for it.

    python examples/datasets/math_word_problems.py --count 20000 --out train.json
"""
import argparse
import json
import random

NAMES = ["小明", "小红", "小刚", "小丽", "王叔叔", "李阿姨", "张老师", "小华"]
THINGS = [("苹果", "个"), ("铅笔", "支"), ("故事书", "本"), ("气球", "个"), ("邮票", "张")]


def _sum(rng):
    name, (thing, unit) = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 500), rng.randint(2, 500)
    text = rng.choice([
        f"{name}有{a}{unit}{thing}，又买了{b}{unit}，现在一共有多少{unit}{thing}？",
        f"{name}原来有{a}{unit}{thing}，别人送给他{b}{unit}，{name}现在有几{unit}？",
        f"一个盒子里有{a}{unit}{thing}，另一个盒子里有{b}{unit}，两个盒子一共有多少{unit}？",
    ])
    return text, f"x={a}+{b}"


def _difference(rng):
    a = rng.randint(50, 900)
    b = rng.randint(1, a - 1)
    text = rng.choice([
        f"一根绳子长{a}米，用去了{b}米，还剩多少米？",
        f"果园里有{a}棵树，砍掉了{b}棵，还剩多少棵？",
        f"{rng.choice(NAMES)}有{a}元钱，花了{b}元，还剩多少元？",
    ])
    return text, f"x={a}-{b}"


def _rate(rng):
    speed, hours = rng.randint(20, 120), rng.randint(2, 12)
    if rng.random() < 0.5:
        text = rng.choice([
            f"一辆汽车每小时行驶{speed}千米，{hours}小时行驶多少千米？",
            f"一台机器每小时生产{speed}个零件，{hours}小时生产多少个零件？",
        ])
        return text, f"x={speed}*{hours}"
    distance = speed * hours
    text = rng.choice([
        f"甲乙两地相距{distance}千米，一辆车每小时行{speed}千米，需要几小时到达？",
        f"一批零件共{distance}个，每小时加工{speed}个，需要多少小时加工完？",
    ])
    return text, f"x={distance}/{speed}"


def _percentage(rng):
    price, percent = rng.randint(2, 60) * 10, rng.choice([5, 10, 15, 20, 25, 30, 40, 50])
    if rng.random() < 0.5:
        text = rng.choice([
            f"一件商品原价{price}元，降价{percent}%后售价多少元？",
            f"一台电视机原价{price}元，现在打折降低了{percent}%，现价是多少元？",
        ])
        return text, f"x={price}*(1-{percent}%)"
    text = rng.choice([
        f"学校有{price}名学生，其中{percent}%是女生，女生有多少名？",
        f"一批货物重{price}吨，运走了{percent}%，运走了多少吨？",
    ])
    return text, f"x={price}*{percent}%"


def _fraction(rng):
    parts = rng.choice([2, 3, 4, 5, 8, 10])
    whole = parts * rng.randint(3, 60)
    text = rng.choice([
        f"一本书有{whole}页，第一天看了全书的(1/{parts})，第一天看了多少页？",
        f"一堆沙子重{whole}千克，用去了(1/{parts})，用去了多少千克？",
    ])
    return text, f"x={whole}*1/{parts}"


def _chickens_and_rabbits(rng):
    chickens, rabbits = rng.randint(1, 40), rng.randint(1, 40)
    heads, feet = chickens + rabbits, 2 * chickens + 4 * rabbits
    if rng.random() < 0.5:
        text = f"鸡兔同笼，共有{heads}个头，{feet}只脚，兔有多少只？"
        return text, f"x=({feet}-2*{heads})/2"
    text = f"笼子里有若干只鸡和兔，从上面数有{heads}个头，从下面数有{feet}只脚，鸡有多少只？"
    return text, f"x=(4*{heads}-{feet})/2"


TEMPLATES = [_sum, _difference, _rate, _percentage, _fraction, _chickens_and_rabbits]


def generate(count, seed=0):
    """`count` items in ape210k's format; the answer is the equation's value."""
    from ape210k import normalize_expression
    from safe_arithmetic import safe_eval

    rng = random.Random(seed)
    items = []
    for index in range(count):
        text, equation = rng.choice(TEMPLATES)(rng)
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
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    write_jsonl(generate(args.count, args.seed), args.out)
