"""Phrases of the synthetic admission notes, per diagnosis, in English and Chinese.

The note generator draws two symptoms, a history, a finding and a plan from the
lists of a patient's diagnosis, so patients with the same condition get similar
notes.
"""

# Clinical abbreviations that some English notes use in place of the full words.
ABBREVIATIONS = (
    ("shortness of breath", "SOB"),
    ("congestive heart failure", "CHF"),
    ("chronic obstructive pulmonary disease", "COPD"),
    ("myocardial infarction", "MI"),
    ("type 2 diabetes mellitus", "T2DM"),
    ("diabetes mellitus", "DM"),
    ("hypertension", "HTN"),
    ("chest pain", "CP"),
    ("blood pressure", "BP"),
    ("blood glucose", "BG"),
    ("heart rate", "HR"),
    ("electrocardiogram", "ECG"),
    ("chest X-ray", "CXR"),
    ("intravenous", "IV"),
    ("twice daily", "BID"),
    ("follow-up", "f/u"),
    ("History of", "h/o"),
    ("as needed", "PRN"),
)

# Phrases per diagnosis, in the order of DIAGNOSES: symptoms, history, finding, plan.
NOTE_PHRASES_EN: dict[str, dict[str, tuple[str, ...]]] = {
    "E11.9": {
        "symptoms": ("polyuria", "increased thirst", "fatigue", "blurred vision"),
        "history": ("type 2 diabetes mellitus on metformin", "hypertension", "obesity"),
        "finding": (
            "blood glucose raised",
            "HbA1c above target",
            "reduced sensation in both feet",
        ),
        "plan": (
            "adjust insulin and refer for diabetes education",
            "retinal screening and foot care follow-up",
        ),
    },
    "E03.9": {
        "symptoms": ("fatigue", "weight gain", "cold intolerance", "constipation"),
        "history": ("thyroid disease", "no significant past illness"),
        "finding": ("TSH raised and free T4 low", "dry skin and slow reflexes"),
        "plan": (
            "start levothyroxine and recheck thyroid function in six weeks",
            "titrate levothyroxine at follow-up",
        ),
    },
    "I10": {
        "symptoms": ("headache", "dizziness", "blurred vision"),
        "history": ("hypertension", "smoking", "hyperlipidaemia"),
        "finding": ("blood pressure elevated", "no signs of end-organ damage"),
        "plan": (
            "titrate antihypertensives and start home blood pressure monitoring",
            "low-salt diet and follow-up in clinic",
        ),
    },
    "I50.0": {
        "symptoms": ("shortness of breath", "ankle swelling", "orthopnoea", "fatigue"),
        "history": ("congestive heart failure", "hypertension", "atrial fibrillation"),
        "finding": ("bibasal crackles and raised JVP", "pitting oedema to the knees"),
        "plan": (
            "intravenous furosemide and daily weights",
            "heart failure nurse follow-up and echocardiogram",
        ),
    },
    "I21.9": {
        "symptoms": ("chest pain", "sweating", "nausea", "shortness of breath"),
        "history": ("hypertension", "smoking", "diabetes mellitus"),
        "finding": ("ST elevation on electrocardiogram", "troponin raised"),
        "plan": (
            "dual antiplatelet therapy and cardiac rehabilitation",
            "coronary angiography and anticoagulation review",
        ),
    },
    "J18.9": {
        "symptoms": (
            "fever",
            "productive cough",
            "shortness of breath",
            "pleuritic chest pain",
        ),
        "history": ("no significant past illness", "asthma", "smoking"),
        "finding": ("consolidation on chest X-ray", "crackles at the right base"),
        "plan": (
            "intravenous antibiotics and oxygen as needed",
            "oral antibiotics and vaccination review",
        ),
    },
    "J44.1": {
        "symptoms": ("shortness of breath", "wheeze", "increased sputum"),
        "history": ("chronic obstructive pulmonary disease", "smoking"),
        "finding": (
            "widespread wheeze and low oxygen saturation",
            "hyperinflation on chest X-ray",
        ),
        "plan": (
            "nebulised bronchodilators and steroids",
            "pulmonary rehabilitation and inhaler technique review",
        ),
    },
    "I63.9": {
        "symptoms": (
            "sudden weakness of the left arm",
            "slurred speech",
            "facial droop",
        ),
        "history": ("hypertension", "atrial fibrillation", "diabetes mellitus"),
        "finding": ("infarct on CT of the head", "reduced power on the left side"),
        "plan": (
            "antiplatelet therapy and stroke rehabilitation",
            "swallowing assessment and physiotherapy",
        ),
    },
    "G40.9": {
        "symptoms": (
            "generalised seizure",
            "confusion after the seizure",
            "tongue biting",
        ),
        "history": ("epilepsy", "no significant past illness"),
        "finding": ("no focal neurological deficit", "abnormal EEG"),
        "plan": (
            "review anticonvulsant dose and arrange EEG",
            "safety advice and neurology follow-up",
        ),
    },
    "S72.0": {
        "symptoms": ("fall at home", "hip pain", "unable to bear weight"),
        "history": ("osteoporosis", "hypertension", "previous falls"),
        "finding": (
            "shortened and externally rotated leg",
            "femoral neck fracture on X-ray",
        ),
        "plan": (
            "hip surgery and physiotherapy",
            "fall prevention and bone density scan",
        ),
    },
    "M17.1": {
        "symptoms": ("knee pain", "stiffness in the morning", "difficulty walking"),
        "history": ("obesity", "hypertension", "no significant past illness"),
        "finding": (
            "crepitus and reduced range of movement",
            "joint space narrowing on X-ray",
        ),
        "plan": (
            "physiotherapy and analgesia as needed",
            "weight loss advice and orthopaedic follow-up",
        ),
    },
    "A09": {
        "symptoms": ("diarrhoea", "vomiting", "abdominal cramps", "fever"),
        "history": ("no significant past illness", "recent travel"),
        "finding": ("mild dehydration", "diffuse abdominal tenderness"),
        "plan": (
            "oral rehydration and stool culture",
            "intravenous fluids and review in the morning",
        ),
    },
    "N18.3": {
        "symptoms": ("fatigue", "ankle swelling", "reduced appetite"),
        "history": ("hypertension", "diabetes mellitus", "chronic kidney disease"),
        "finding": ("creatinine raised and eGFR reduced", "blood pressure elevated"),
        "plan": (
            "renal diet counselling and medication review",
            "nephrology follow-up and blood pressure control",
        ),
    },
}

NOTE_PHRASES_ZH: dict[str, dict[str, tuple[str, ...]]] = {
    "E11.9": {
        "symptoms": ("多饮多尿", "乏力", "视物模糊"),
        "history": ("2型糖尿病，口服二甲双胍", "高血压"),
        "finding": ("空腹血糖升高", "双足感觉减退"),
        "plan": ("调整胰岛素，糖尿病健康教育", "眼底筛查及足部护理随访"),
    },
    "E03.9": {
        "symptoms": ("乏力", "体重增加", "怕冷"),
        "history": ("甲状腺疾病", "无特殊病史"),
        "finding": ("TSH升高，FT4降低", "皮肤干燥"),
        "plan": ("左甲状腺素替代治疗，六周后复查甲功", "门诊随访调整剂量"),
    },
    "I10": {
        "symptoms": ("头痛", "头晕"),
        "history": ("高血压", "吸烟", "高脂血症"),
        "finding": ("血压升高", "未见靶器官损害"),
        "plan": ("调整降压药，家庭血压监测", "低盐饮食，门诊随访"),
    },
    "I50.0": {
        "symptoms": ("气促", "双下肢水肿", "夜间不能平卧"),
        "history": ("心力衰竭", "高血压", "房颤"),
        "finding": ("双肺底湿啰音", "颈静脉怒张"),
        "plan": ("静脉利尿，每日称重", "心衰护士随访，复查超声心动图"),
    },
    "I21.9": {
        "symptoms": ("胸痛", "大汗", "恶心"),
        "history": ("高血压", "吸烟", "糖尿病"),
        "finding": ("心电图ST段抬高", "肌钙蛋白升高"),
        "plan": ("双联抗血小板，心脏康复", "冠脉造影，抗凝门诊评估"),
    },
    "J18.9": {
        "symptoms": ("发热", "咳嗽咳痰", "气促"),
        "history": ("无特殊病史", "哮喘", "吸烟"),
        "finding": ("胸片示右下肺实变", "右下肺湿啰音"),
        "plan": ("静脉抗生素，必要时吸氧", "口服抗生素，评估疫苗接种"),
    },
    "J44.1": {
        "symptoms": ("气促加重", "喘息", "咳痰增多"),
        "history": ("慢阻肺", "长期吸烟"),
        "finding": ("双肺哮鸣音，血氧饱和度低", "胸片示肺气肿"),
        "plan": ("雾化支气管扩张剂及激素", "肺康复，吸入装置使用培训"),
    },
    "I63.9": {
        "symptoms": ("突发左上肢无力", "言语不清", "口角歪斜"),
        "history": ("高血压", "房颤", "糖尿病"),
        "finding": ("头颅CT示脑梗死", "左侧肌力下降"),
        "plan": ("抗血小板治疗，卒中康复", "吞咽功能评估，物理治疗"),
    },
    "G40.9": {
        "symptoms": ("全身抽搐", "发作后意识模糊"),
        "history": ("癫痫", "无特殊病史"),
        "finding": ("神经系统查体无局灶体征", "脑电图异常"),
        "plan": ("调整抗癫痫药物，脑电图监测", "安全宣教，神经内科随访"),
    },
    "S72.0": {
        "symptoms": ("在家跌倒", "髋部疼痛", "不能负重"),
        "history": ("骨质疏松", "高血压", "反复跌倒"),
        "finding": ("患肢短缩外旋", "X线示股骨颈骨折"),
        "plan": ("手术治疗，术后物理治疗", "跌倒预防，骨密度检查"),
    },
    "M17.1": {
        "symptoms": ("膝关节疼痛", "晨僵", "行走困难"),
        "history": ("肥胖", "高血压", "无特殊病史"),
        "finding": ("关节骨擦音，活动受限", "X线示关节间隙变窄"),
        "plan": ("物理治疗，必要时止痛", "减重建议，骨科随访"),
    },
    "A09": {
        "symptoms": ("腹泻", "呕吐", "腹痛", "发热"),
        "history": ("无特殊病史", "近期外出旅行"),
        "finding": ("轻度脱水", "腹部弥漫性压痛"),
        "plan": ("口服补液，粪便培养", "静脉补液，次日复查"),
    },
    "N18.3": {
        "symptoms": ("乏力", "双下肢水肿", "食欲下降"),
        "history": ("高血压", "糖尿病", "慢性肾脏病"),
        "finding": ("肌酐升高，eGFR下降", "血压升高"),
        "plan": ("肾病饮食指导，药师用药审查", "肾内科随访，控制血压"),
    },
}
