"""Free-text templates for products, case notes, reviews and social posts.

Kept apart from the rates: this is prose, not configuration. Some templates deliberately contain
commas, double quotes and line breaks so the files exercise full CSV quoting.
"""

from __future__ import annotations

PRODUCT_ADJECTIVES = [
    "Classic", "Organic", "Slim", "Waterproof", "Cotton", "Wireless", "Compact", "Deluxe", "Everyday",
    "Linen", "Wool", "Ceramic", "Bamboo", "Leather", "Recycled", "Premium", "Travel", "Kids", "Garden",
]
PRODUCT_NOUNS = [
    "Jacket", "Kettle", "Toaster", "Trainers", "Duvet Cover", "Backpack", "Headphones", "Lamp", "Mug Set",
    "Jumper", "Frying Pan", "Umbrella", "Towel Bale", "Desk Chair", "Blender", "Rug", "Water Bottle",
    "Shirt", "Boots", "Cushion", "Throw", "Speaker", "Scarf", "Watch",
]

CASE_NOTES = {
    "delivery_delay": [
        "Customer chasing delivery of {order}, courier shows no scan since {day}.",
        'Customer says parcel "still not here", asked for update.\nAdvised 48h more, will chase courier.',
        "Delivery late again, customer unhappy, offered free delivery code.",
    ],
    "refund_request": [
        "Refund requested for {order}, item returned to store {store}.",
        'Wants refund, said the item was "not as described". Escalated to returns team.',
        "Refund pending, customer asked for timescales, told 5-7 working days.",
    ],
    "damaged_item": [
        "Item arrived damaged, photos received by email.\nReplacement raised.",
        'Customer: "box was crushed, glass broken". Replacement sent, no return needed.',
    ],
    "billing": [
        "Charged twice for {order}, refunded duplicate payment.",
        "Query about invoice, address on bill is old one, updated.",
    ],
    "account_access": [
        "Locked out of account, password reset link resent.",
        'Cannot log in, says "reset email never arrives". Checked spam, resent.',
    ],
    "product_question": [
        "Asked about sizing, advised to size up.",
        "Question about warranty on {sku}, 2 years, sent T&Cs.",
    ],
    "returns": [
        "Return label requested for {order}.",
        "Return received at warehouse, refund to follow.\nCustomer informed.",
    ],
    "complaint": [
        'Complaint about staff member at store {store}, said they were "rude, unhelpful". Passed to store manager.',
        "Unhappy with service, third contact this week, wants a call back from a manager.",
    ],
}

REPEAT_NOTES = [
    "Customer calling again about {order}, still no resolution.",
    'Chased again, customer says "this is the {n}th time I have called". Escalated.',
    "Follow up on open case, no update from courier, customer frustrated.\nPromised call back.",
]

REVIEW_TITLES = {
    5: ["Excellent", "Love it!", "Great quality", "Perfect, thank you", "Brilliant service"],
    4: ["Very good", "Happy with it", "Good value", "Nice, but runs small"],
    3: ["OK", "Average", "Does the job", "Mixed feelings"],
    2: ["Disappointed", "Not great", "Poor quality", "Expected better"],
    1: ["Terrible", "Avoid", "Never again", "Awful customer service"],
}
REVIEW_BODIES = {
    5: [
        "The {product} is fantastic, arrived next day. Would buy again.",
        "Really pleased with my {product}, great quality and well packaged.",
        'Staff were lovely, "nothing was too much trouble". Five stars.',
    ],
    4: ["Good {product}, slightly smaller than expected.", "Nice {product}, delivery took a few days, but fine."],
    3: ["The {product} is okay, nothing special.", "Average quality, delivery was slow, but it arrived."],
    2: ["The {product} broke after a week. Not impressed.", "Took ages to arrive, and the {product} was scratched."],
    1: [
        "Order {order} never arrived, called {n} times and nobody helps.",
        'Still waiting for a refund, customer service keep saying "it is being looked into".',
        "Worst experience, the {product} was broken, and my complaint is still open.",
    ],
}
ANGRY_REVIEW_BODIES = [
    "Order {order} still not sorted after {n} calls. Absolutely useless, do not order from here.",
    'Raised a complaint about {order} days ago, still "under investigation". Disgraceful.',
    "Damaged {product}, no replacement, no refund, case still open. Never again.",
]

SOCIAL_POSTS = [
    "Just picked up a new {product}, loving it",
    "Anyone tried the {product}? Worth it?",
    "Great service in store today, thanks!",
    "Sale is on, grabbed a {product} for a bargain",
    "Does anyone know if the {product} comes in blue?",
    "Delivery came early, nice one",
]
ANGRY_SOCIAL_POSTS = [
    "@shop still waiting on order {order}, {n} calls and nothing. Sort it out!",
    "Worst customer service ever. Complaint open for days, nobody replies. #fail",
    "@shop my refund for {order} is STILL pending. Not happy.",
]

SEARCH_TERMS = ["jacket", "kettle", "trainers", "gift ideas", "sale", "duvet", "headphones", "boots", "lamp"]
