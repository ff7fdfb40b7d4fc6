"""Chinese sentences with person, place and organization names, in the People's Daily NER
format (one character and its BIO tag per line, a blank line between sentences), generated.

Stands in for the People's Daily corpus (../shared/data/people_daily_ner, not bundled) of
bert4keras's NER examples when it is absent: the same file format, the same three types (PER,
LOC, ORG), names that recur across sentences in varied contexts.
"""
import random

PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴强",
          "孙丽", "马超", "朱琳", "胡军", "郭涛", "林峰"]
PLACES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "武汉", "成都", "西安", "天津",
          "重庆", "长沙", "青岛", "厦门", "昆明", "苏州"]
ORGANIZATIONS = ["新华社", "人民日报社", "清华大学", "北京大学", "中国银行", "国家统计局",
                 "中国科学院", "外交部", "交通银行", "复旦大学", "国务院", "中央电视台"]
TEMPLATES = [
    "{PER}昨天在{LOC}参加了{ORG}举办的会议。",
    "据{ORG}报道，{PER}将于下周访问{LOC}。",
    "{LOC}市民{PER}向记者介绍了当地的情况。",
    "{ORG}的{PER}说，{LOC}的经济发展很快。",
    "今年春天，{PER}和{PER}一起去了{LOC}。",
    "{ORG}在{LOC}设立了新的办事处。",
    "记者从{ORG}获悉，{LOC}的项目已经完成。",
    "{PER}毕业于{ORG}，现在在{LOC}工作。",
    "这次活动由{ORG}和{ORG}共同主办。",
    "{LOC}和{LOC}之间的高铁今天开通。",
]
NAMES = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGANIZATIONS}


def generate(count, seed=0):
    """`count` sentences as lists of `(character, tag)`."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        template, sentence = rng.choice(TEMPLATES), []
        while template:
            if template.startswith("{"):
                kind, template = template[1:4], template[5:]
                name = rng.choice(NAMES[kind])
                sentence += [(c, ("B-" if i == 0 else "I-") + kind) for i, c in enumerate(name)]
            else:
                sentence.append((template[0], "O"))
                template = template[1:]
        sentences.append(sentence)
    return sentences
