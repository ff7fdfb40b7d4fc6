"""Chinese passages with questions whose answers are spans, in WebQA's JSON format, generated.

Each question has two passages: its person's profile (which holds the answer) and another
person's profile (answer `["no_answer"]`). Stands in for WebQA/SogouQA, which cannot be
downloaded here.
"""
import random

SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "苏州"]
SCHOOLS = ["北京大学", "清华大学", "复旦大学", "浙江大学", "南京大学", "武汉大学", "中山大学"]
JOBS = ["医生", "教师", "工程师", "律师", "记者", "厨师", "画家", "会计"]
QUESTIONS = [
    ("year", "{name}出生于哪一年", "{name}是哪一年出生的"),
    ("city", "{name}是哪里人", "{name}出生在哪个城市"),
    ("school", "{name}毕业于哪所学校", "{name}是哪所大学毕业的"),
    ("job", "{name}的职业是什么", "{name}现在做什么工作"),
]


def _person(rng):
    return {"name": rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, 2)),
            "year": str(rng.randint(1950, 2005)), "city": rng.choice(CITIES),
            "school": rng.choice(SCHOOLS), "job": rng.choice(JOBS)}


def _passage(person, rng):
    parts = [f"{person['year']}年出生于{person['city']}", f"毕业于{person['school']}",
             f"现在是一名{person['job']}"]
    rng.shuffle(parts)
    return f"{person['name']}，" + "，".join(parts) + "。"


def generate(count, seed=0):
    """`count` questions as a WebQA-style dict."""
    rng = random.Random(seed)
    data = {}
    for index in range(count):
        person, other = _person(rng), _person(rng)
        field, *wordings = rng.choice(QUESTIONS)
        qid = f"Q_GEN_{index:06d}"
        passages = [(_passage(person, rng), [person[field]]), (_passage(other, rng), ["no_answer"])]
        rng.shuffle(passages)
        data[qid] = {
            "question": rng.choice(wordings).format(name=person["name"]),
            "evidences": {f"{qid}#{k:02d}": {"evidence": text, "answer": answer}
                          for k, (text, answer) in enumerate(passages)},
        }
    return data
