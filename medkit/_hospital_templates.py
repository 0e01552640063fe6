"""Fixed vocabularies of the synthetic hospital: diagnoses, names, notes, services.

Every name, address, city and road below is invented for the course. Any match
with a real person or place is a coincidence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    """One ICD-10 diagnosis and the clinical pattern the generator draws for it."""

    icd10: str
    name_en: str
    name_zh: str
    department: str
    prevalence: float
    typical_age: float
    mean_stay: float
    glucose_mean: float
    glucose_sd: float
    creatinine_mean: float
    creatinine_sd: float
    systolic_bp: float
    heart_rate: float
    readmit_logit: float


# English name, Chinese name and admitting department of each diagnosis.
_NAMES = {
    "E11.9": (
        "type 2 diabetes mellitus without complications",
        "2型糖尿病不伴并发症",
        "内分泌科",
    ),
    "E03.9": ("hypothyroidism, unspecified", "甲状腺功能减退症", "内分泌科"),
    "I10": ("essential (primary) hypertension", "原发性高血压", "心内科"),
    "I50.0": ("congestive heart failure", "充血性心力衰竭", "心内科"),
    "I21.9": ("acute myocardial infarction, unspecified", "急性心肌梗死", "心内科"),
    "J18.9": ("pneumonia, unspecified organism", "肺炎", "呼吸内科"),
    "J44.1": (
        "chronic obstructive pulmonary disease with acute exacerbation",
        "慢性阻塞性肺疾病急性加重",
        "呼吸内科",
    ),
    "I63.9": ("cerebral infarction, unspecified", "脑梗死", "神经内科"),
    "G40.9": ("epilepsy, unspecified", "癫痫", "神经内科"),
    "S72.0": ("fracture of neck of femur", "股骨颈骨折", "骨科"),
    "M17.1": ("primary osteoarthritis of the knee", "膝关节骨关节炎", "骨科"),
    "A09": (
        "infectious gastroenteritis and colitis, unspecified",
        "感染性胃肠炎和结肠炎",
        "急诊科",
    ),
    "N18.3": ("chronic kidney disease, stage 3", "慢性肾脏病3期", "肾内科"),
}

# Columns: relative prevalence, typical age (years), mean length of stay (days),
# glucose mean and SD (mmol/L), creatinine mean and SD (umol/L), systolic BP (mmHg),
# heart rate (beats per minute), readmission term (added to the log-odds).
_PATTERNS = {
    "E11.9": (0.14, 62, 4, 10.5, 3.0, 85, 22, 138, 82, 0.45),
    "E03.9": (0.05, 55, 3, 5.4, 0.8, 80, 18, 125, 62, -0.40),
    "I10": (0.14, 64, 3, 5.8, 1.0, 84, 20, 162, 78, -0.20),
    "I50.0": (0.08, 74, 7, 6.4, 1.3, 120, 30, 128, 96, 0.90),
    "I21.9": (0.06, 66, 6, 7.0, 1.6, 92, 24, 135, 92, 0.60),
    "J18.9": (0.1, 58, 7, 6.2, 1.2, 82, 22, 122, 100, 0.30),
    "J44.1": (0.07, 70, 6, 6.0, 1.1, 86, 20, 130, 98, 0.70),
    "I63.9": (0.07, 70, 9, 6.6, 1.4, 88, 22, 150, 80, 0.40),
    "G40.9": (0.04, 38, 3, 5.5, 0.8, 76, 16, 124, 84, 0.00),
    "S72.0": (0.06, 78, 10, 6.0, 1.0, 84, 20, 135, 86, 0.20),
    "M17.1": (0.07, 66, 5, 5.7, 0.9, 80, 18, 132, 76, -0.60),
    "A09": (0.07, 40, 2, 5.6, 0.9, 82, 20, 115, 96, -0.50),
    "N18.3": (0.05, 68, 5, 6.3, 1.2, 190, 40, 148, 78, 0.50),
}

DIAGNOSES: tuple[Diagnosis, ...] = tuple(
    Diagnosis(code, *_NAMES[code], *_PATTERNS[code]) for code in _NAMES
)

# Readmission model: log-odds = INTERCEPT + AGE * (age - 65) / 10
#   + diagnosis term + STAY * (length of stay - 5) + GLUCOSE * (glucose - 6)
#   + PRIOR * min(prior visits, 5).
READMIT_INTERCEPT = -2.7
READMIT_AGE_PER_10_YEARS = 0.35
READMIT_STAY_PER_DAY = 0.12
READMIT_GLUCOSE_PER_MMOL = 0.15
READMIT_PRIOR_PER_VISIT = 0.30
READMIT_PRIOR_CAP = 5

CHINESE_SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
)
CHINESE_GIVEN = tuple(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红玲芬燕彬浩宇轩然晨欣怡梓涵雨思嘉博文建国志海春雪梅兰云林鹏飞"
)
ENGLISH_FIRST_MALE = tuple(
    "James John Robert Michael David William Richard Thomas Daniel Matthew Andrew "
    "George Peter Samuel Henry Oliver".split()
)
ENGLISH_FIRST_FEMALE = tuple(
    "Mary Patricia Jennifer Linda Elizabeth Susan Sarah Emma Olivia Grace Helen "
    "Alice Laura Chloe Lucy Anna".split()
)
ENGLISH_LAST = tuple(
    "Smith Johnson Brown Taylor Wilson Davies Evans Roberts Walker Wright "
    "Thompson White Hughes Edwards Green Hall Wood Harris Clarke Lewis Martin "
    "Jackson Turner Baker".split()
)
CHINESE_CITIES = tuple("青禾市 云岭市 白鹭市 枫港市 海棠市 石桥市".split())
CHINESE_DISTRICTS = tuple("东城区 西湖区 南湖区 北苑区 高新区 新港区 老城区".split())
CHINESE_ROADS = tuple(
    "人民路 中山路 建设路 解放路 和平路 长江路 新华路 "
    "文化路 青年路 胜利路 花园路 学府路 滨江路 光明路".split()
)
ENGLISH_TOWNS = tuple(
    "Eastbrook Millford Harbourview Kingsbridge Ashcombe Westmere".split()
)
ENGLISH_STREETS = tuple(
    "Oak Willow Station Church Mill Park Victoria Orchard River Market Chapel "
    "Meadow".split()
)
ENGLISH_STREET_KINDS = tuple("Road Street Lane Avenue Close".split())

# Service catalogue: code, English name, Chinese name, category.
SERVICES: tuple[tuple[str, str, str, str], ...] = (
    ("S001", "Diabetes education", "糖尿病健康教育", "education"),
    ("S002", "Retinal screening", "眼底筛查", "screening"),
    ("S003", "Diabetic foot care", "糖尿病足护理", "nursing"),
    ("S004", "Dietitian consultation", "营养咨询", "consultation"),
    ("S005", "Home blood pressure monitoring", "家庭血压监测", "monitoring"),
    ("S006", "Cardiac rehabilitation", "心脏康复", "rehabilitation"),
    ("S007", "Heart failure nurse follow-up", "心衰护士随访", "follow-up"),
    ("S008", "Echocardiography", "超声心动图", "diagnostics"),
    ("S009", "Pulmonary rehabilitation", "肺康复", "rehabilitation"),
    ("S010", "Inhaler technique training", "吸入装置使用培训", "education"),
    ("S011", "Smoking cessation counselling", "戒烟咨询", "consultation"),
    (
        "S012",
        "Influenza and pneumococcal vaccination",
        "流感及肺炎球菌疫苗接种",
        "prevention",
    ),
    ("S013", "Stroke rehabilitation", "卒中康复", "rehabilitation"),
    ("S014", "Swallowing assessment", "吞咽功能评估", "assessment"),
    ("S015", "Physiotherapy", "物理治疗", "rehabilitation"),
    ("S016", "Fall prevention programme", "跌倒预防", "prevention"),
    ("S017", "Bone density scan", "骨密度检查", "diagnostics"),
    ("S018", "Home oxygen assessment", "家庭氧疗评估", "assessment"),
    ("S019", "Renal diet counselling", "肾病饮食指导", "consultation"),
    ("S020", "Medication review by a pharmacist", "药师用药审查", "consultation"),
    ("S021", "EEG monitoring", "脑电图监测", "diagnostics"),
    ("S022", "Thyroid function follow-up", "甲状腺功能随访", "follow-up"),
    ("S023", "Oral rehydration guidance", "口服补液指导", "education"),
    ("S024", "Telehealth follow-up", "远程随访", "follow-up"),
    ("S025", "Anticoagulation clinic", "抗凝门诊", "follow-up"),
)

# Probability that a patient whose main diagnosis is the key receives each service.
SERVICE_PROBABILITIES: dict[str, dict[str, float]] = {
    "E11.9": {"S001": 0.8, "S002": 0.7, "S003": 0.6, "S004": 0.5},
    "E03.9": {"S022": 0.8, "S004": 0.3},
    "I10": {"S005": 0.8, "S004": 0.4, "S011": 0.3},
    "I50.0": {"S007": 0.8, "S008": 0.7, "S006": 0.4, "S004": 0.3},
    "I21.9": {"S006": 0.8, "S008": 0.6, "S025": 0.5, "S011": 0.4},
    "J18.9": {"S012": 0.7, "S011": 0.3, "S018": 0.2},
    "J44.1": {"S009": 0.8, "S010": 0.7, "S011": 0.5, "S018": 0.4, "S012": 0.5},
    "I63.9": {"S013": 0.8, "S014": 0.7, "S015": 0.6, "S025": 0.4},
    "G40.9": {"S021": 0.8, "S024": 0.4},
    "S72.0": {"S015": 0.8, "S016": 0.7, "S017": 0.6},
    "M17.1": {"S015": 0.8, "S004": 0.4, "S016": 0.3},
    "A09": {"S023": 0.8, "S024": 0.2},
    "N18.3": {"S019": 0.8, "S020": 0.6, "S005": 0.4},
}
# Services any patient may receive, whatever the diagnosis.
GENERAL_SERVICE_PROBABILITIES: dict[str, float] = {"S020": 0.15, "S024": 0.10}
