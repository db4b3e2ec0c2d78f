"""The patient-screen rules: one regex per risk pattern, with category, base level and context flags."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Rule:
    name: str
    category: str
    level: str
    pattern: re.Pattern
    flags: str = ""   # n=negatable r=reported-speech f=fiction j=joke->drop J=joke->low t=time cues h=history


def _r(name, category, level, pattern, flags="nrf"):
    return _Rule(name, category, level, re.compile(pattern), flags)


W = r"(?:[a-z]+ ){0,3}?"     # up to three filler words
W5 = r"(?:[a-z]+ ){0,5}?"
WB = (r"(?:(?!(?:want|wanna|need|feel|think|urge|scared|afraid|tempted|going|will|might|could|would|should|"
      r"never|dont|wont)\b)[a-z]+ ){0,3}?")   # filler for behaviour rules: "I (just) took", not "I want to take"
_I = r"\b(?:i|im|ive|ill|id|i'?m)\b"
_PILLS = (r"(?:pills|tablets|meds|medication|medicine|paracetamol|tylenol|acetaminophen|ibuprofen|aspirin|"
          r"sleeping pills|painkillers|antidepressants|insulin|oxy\w*|xanax|benzos|lithium|[a-z]+(?:pam|ine|ol))")
_TARGET = (r"(?:him|her|them|my (?:boss|manager|ex|partner|husband|wife|boyfriend|girlfriend|dad|father|mum|"
           r"mom|mother|stepdad|stepmom|brother|sister|neighbou?r|roommate|flatmate|landlord|coworker|colleague|"
           r"teacher|son|daughter|kids?|baby|children|family|parents)|that (?:guy|man|woman|girl|bitch|bastard|"
           r"prick|asshole|jerk)|(?:some|every|any)(?:one|body)|people|the (?:guy|man|woman|kids|people|bastard)"
           r"(?: who| that| at)?)")
_ROUTINE = (r"(?![^.!?]{0,40}\b(?:with (?:breakfast|lunch|dinner|food|meals?|water|milk)|as prescribed|"
            r"(?:like|as) (?:the|my) (?:doctor|gp|pharmacist|nurse)|every (?:day|morning|night|evening)|"
            r"each (?:day|morning|night)|daily|on time)\b)")
_SH_VERB = r"(?:cut|cutting|burn|burning|burned|burnt|hurt|hurting|harm|harming|scratch|scratching|hit|hitting)"

RULES: tuple[_Rule, ...] = (
    # ---- passive ideation / wish to be dead (low) ----
    _r("wish_dead", "self_harm", "low",
       rf"(?:{_I}|part of me) {W}(?P<core>(?:wish(?:es|ed)?|wants?|wanted|hope[sd]?) (?:i (?:was|were|could be|had been)|to be) "
       r"(?:dead|gone|never born)|(?:wish(?:es|ed)?|hope[sd]?) i (?:could |would |just )?(?:die|disappear|vanish|"
       r"not exist|stop existing|didnt exist|wasnt (?:here|alive|born)|wouldnt wake up|dont wake up|wont wake up|"
       r"never wake up|hadnt woken up|didnt wake up|never woke up)(?! (?:late|early|in time|on time|with|tired|at|"
       r"before|until|till|to|too|from))|"
       r"want to (?:disappear|stop existing|not exist|not be here|not wake up)|"
       r"(?:would|d) (?:rather|prefer to) (?:be dead|die|not exist|not be here))"),
    _r("intent_pills", "self_harm", "high",
       rf"(?P<core>(?:ill|i will|im going to|im gonna|i am going to|im about to|i plan to|im planning to|"
       rf"i decided to|ive decided to) (?:just )?(?:take|swallow|down) (?:all|all of|every one of|a bunch of|"
       rf"the whole (?:bottle|box|packet|pack) of) (?:my |the |these )?{_PILLS})" + _ROUTINE),
    _r("cant_go_on", "self_harm", "low",
       r"(?P<core>(?:cant|cannot|can not|dont (?:think|know if) i can) (?:go on|keep going|carry on|do this)"
       r"(?: (?:anymore|any more|any longer|like this|living|with (?:life|living)))?)(?= *(?:[.!?,]|$))"),
    _r("want_to_die", "self_harm", "low",
       rf"{_I} {W}(?P<core>(?:want|wanted|need|ready) to (?:die|be dead)|feel like dying)"
       r"(?! (?:of|from|laughing|for|on|in this|a little|inside|when))"),
    _r("sleep_not_wake", "self_harm", "low",
       r"(?P<core>(?:sleep|go to sleep|fall asleep|close my eyes)(?: forever)?(?: and| then)? (?:never|not|just "
       r"not|and not) (?:wake|waking) up|sleep forever|(?:hope|wish|pray) i (?:dont|wont|never|didnt) wake up"
       r"(?! (?:late|early|in time|on time|with|tired|at|before|until|till|to)))", "r"),
    _r("better_off_without_me", "self_harm", "low",
       r"(?P<core>(?:better|happier|easier) (?:off )?(?:without me|if i (?:just )?(?:was|were) (?:gone|dead|not here|"
       r"never born)|if i (?:just )?(?:wasnt|werent) (?:here|around|alive)|if i (?:just )?(?:disappeared|vanished|died|"
       r"killed myself|was gone for good))|better off dead|if i (?:was|were) gone)", "r"),
    _r("nobody_would_miss", "self_harm", "low",
       r"(?P<core>(?:nobody|no one|noone|anyone)(?: (?:would|will|even|really|ever|actually)){0,3} (?:care|notice|miss me|be sad|cry)"
       r"(?: \w+){0,3} if i (?:died|was gone|were gone|disappeared|was dead|killed myself|wasnt here))", "r"),
    _r("no_reason_to_live", "self_harm", "low",
       r"(?P<core>(?:no|any|nothing to) (?:reason|point|purpose) (?:to|in|of|for) (?:live|living|be alive|"
       r"being alive|keep going|go on|wake up|exist)|nothing to live for|(?:whats|what is|theres no) the point "
       r"(?:of|in) (?:living|being alive|life|going on|existing)|life (?:isnt|is not|aint) worth (?:living|it)|"
       r"(?:tired|sick) of (?:living|being alive|existing|life)|dont want to (?:live|be alive|exist|be here|wake up)"
       r"(?! (?:with|in|near|like|at|there|on|somewhere|abroad|alone|for|without|through|as|under|if)))", "r"),
    _r("not_sure_want_live", "self_harm", "low",
       rf"{_I} {W}(?P<core>(?:not sure|dont know|unsure|dont think)(?: if| whether| that)? (?:i )?(?:want|can|will|"
       r"should) (?:to )?(?:live|be alive|keep going|go on|keep living|carry on|stay alive|be here much longer))", "r"),
    _r("cant_go_on", "self_harm", "low",
       r"(?P<core>(?:cant|dont know how (?:much longer|long) i can|not sure i can) (?:go on|keep going|carry on|"
       r"keep living|do this) (?:any ?more|much longer|like this|for much longer)|want (?:it|everything|the pain) "
       r"(?:all )?to (?:stop|end) (?:forever|for good|permanently))", "r"),
    _r("hit_by_bus", "self_harm", "low",
       r"(?P<core>(?:hope|wish|wouldnt mind if|dont care if|pray) (?:i )?(?:get|got|gets|was|were|a \w+) "
       r"(?:hit|run over|killed|crash)(?: by)?(?: a| an)? ?(?:bus|car|truck|train|lorry)?)", "r"),
    _r("thinking_dying", "self_harm", "low",
       r"(?P<core>(?:thinking|thought|think|thoughts) (?:a lot |so much |constantly |all the time )?(?:about|of) "
       r"(?:dying|being dead|not being (?:here|alive|around)|not existing|my (?:own )?death|my funeral)|"
       r"(?:feel|feeling|im) (?:like )?(?:such )?a burden (?:to|on) (?:everyone|my family|them|people|you all)|"
       r"(?:just )?want (?:it all|everything|the pain|all of this|this all|the hurt) to (?:stop|end|go away forever))"),
    _r("thoughts_back", "self_harm", "low",
       r"(?P<core>(?:suicidal|dark|those|the|these) (?:thoughts|urges|feelings) (?:are|have been|have|keep) "
       r"(?:back|coming back|come back|returned|getting (?:worse|louder|stronger)))", "r"),
    # ---- active ideation (moderate) ----
    _r("kill_myself", "self_harm", "moderate",
       r"(?P<core>(?:kill|killing|killed|end|ending|ended|take|taking|took) (?:my (?:own )?life|myself)"
       r"|unalive (?:myself|me)|unaliving|off myself|top myself|neck myself|self ?delete)"
       r"(?! (?:laughing|with (?:work|study|training|exercise)|at (?:the gym|work)))"),
    _r("suicidal", "self_harm", "moderate",  # flag s: third-person subject in the clause -> not about the patient
       r"(?P<core>suicid(?:e|al)\w*|sewerslide|sui\b(?= (?:thoughts|again|lately)|$)|feeling sui\b|"
       r"(?:want|going|plan|thinking|think|thought) (?:to |about |of )?(?:unalive|ctb\b))"
       r"(?! (?:prevention|awareness|squad|rates?|statistics|hotline|line|bombers?|bomber|mission|doors?|calls?|cases?|"
       r"patients?|victims?|survivors?|research|training|policy|policies|risk assessments?|watch|notes? (?:in|from)|"
       r"attempts? (?:by|of)|in (?:the|a|his|her) (?:film|book|song|show)))", "nrfs"),
    _r("kms", "self_harm", "moderate", r"\b(?P<core>kms|ctb)\b", "nrfJ"),
    _r("end_it_all", "self_harm", "moderate",
       r"(?P<core>end (?:it|things|everything) (?:all|for good|permanently|once and for all)|end it all|"
       r"ending it all|ending (?:it|things) (?:for good|permanently)|check out (?:early|for good|permanently)|"
       r"(?:want|going|plan) to (?:go|be) (?:to sleep )?forever)"),
    _r("end_it_ctx", "self_harm", "moderate",
       r"(?P<core>(?:want|going|ready|need|plan|planning|thinking (?:of|about)|think about|decided) (?:to )?end(?:ing)? "
       r"(?:it|things)(?= *(?:[.!?,]|$| now| tonight| today| soon| for good)))", "nrfc"),
    _r("method_thoughts", "self_harm", "moderate",
       rf"(?P<core>(?:hang|hanging|shoot|shooting|drown|drowning|poison|poisoning|gas|gassing|stab|stabbing|hurt|"
       r"hurting|harm|harming|throw|throwing) (?:myself)|(?:jump|jumping|throw myself) (?:off|from|in front of|under)"
       r" (?:a|the|my) (?:bridge|building|roof|cliff|train|bus|car|balcony|car park|tower|window|tracks|truck|lorry)"
       r"|(?:slit|slitting|cut|cutting|slash|slashing) (?:my|both) (?:wrists?|throat|veins?)|(?:step|stepping|walk|"
       r"walking) (?:out )?in front of (?:a|the) (?:train|bus|truck|lorry|car|traffic)|driv(?:e|ing) (?:my car |the car )?"
       r"(?:into|off) (?:a|the) (?:tree|wall|bridge|cliff|river|oncoming traffic|traffic|lake)|crash(?:ing)? my car"
       rf" on purpose|(?:take|taking|swallow|swallowing) (?:all|all of|every one of) my {_PILLS}|overdos(?:e|ing)"
       r" (?:on (?:purpose|my|all)|again)|od (?:on|again)|(?:want|going|plan) to (?:overdose|od)\b)"
       + _ROUTINE +
       r"(?! (?:accidentally|by accident|at the gym|when i|while|cooking|shaving|chopping|on the (?:stove|oven|iron|"
       r"pan|kettle|door|edge|glass)|with the (?:knife|stove)))"),
    _r("how_i_would_do_it", "self_harm", "moderate",
       r"(?P<core>(?:think|thinking|thought|thoughts) (?:about|of) how (?:id|i would|ill|i could|to|i might) "
       r"(?:do it|end it|go through with it|kill myself)|(?:asked|asks) (?:me )?(?:if|whether) (?:im|i was|id|i had|"
       r"ive|i have|i ever)(?: \w+){0,4} (?:suicid\w*|kill myself|killing myself|hurt myself|selfharm\w*)(?: \w+){0,4}"
       r",? (?:and )?i said (?:yes|yeah|yep|i am|i was|i have|maybe|sort of|kind of|sometimes))"),
    _r("selfharm_urge", "self_harm", "moderate",
       rf"(?P<core>(?:urges?|urging|want|wanting|need|needing|tempted|craving|itching) (?:to )?(?:selfharm|sh|cut"
       r"|burn myself|hurt myself)\b|(?:thinking|thought) (?:about|of) (?:cutting|selfharm\w*|burning myself|hurting myself)"
       r"|selfharm(?:ing)? urges|(?:relapse|relapsing) (?:on|with|into) (?:selfharm|sh|cutting))"),
    _r("voices_command", "self_harm", "high",
       r"(?P<core>voices? (?:\w+ ){0,3}(?:tell|tells|telling|told|say|says|saying) (?:me )?(?:to|i should) "
       r"(?:kill myself|die|hurt myself|jump|end it|cut))", ""),
    # ---- intent / plan / preparation (high) ----
    _r("intent", "self_harm", "high",
       rf"{_I} {W}(?P<core>(?:going to|will|plan to|planning to|intend to|decided to|made up my mind to|"
       r"ready to|gonna|about to|finally going to) (?:kill myself|end (?:my life|it all|it|things|everything)|"
       r"take my (?:own )?life|unalive|kms|do it|jump|hang myself|overdose|od|go through with it|die|"
       rf"(?:take|swallow) (?:all|all of|every one of|a bunch of|the whole (?:bottle|box|packet|pack) of) "
       rf"(?:my |the |these )?{_PILLS}))"
       r"(?! (?:with him|with her|with them|with my|at (?:work|the)|the conversation|my (?:contract|lease)))"),
    _r("not_burden_much_longer", "self_harm", "high",
       r"(?P<core>(?:wont|will not|not going to) (?:be (?:a burden|around|here|a problem|bothering you)|have to "
       r"(?:worry|deal|put up) (?:about|with) me) (?:much|for much|any) longer|(?:soon|after tonight|by tomorrow) "
       r"(?:it|none of (?:this|it)|nothing) (?:wont|will|is going to) matter|(?:wont|will not) (?:have to )?(?:see|"
       r"hear from) me (?:again|ever again)|(?:this|today) (?:is|will be) my last (?:day|night|session|time))", "rf"),
    _r("plan", "self_harm", "high",
       rf"{_I} {W}(?P<core>(?:have|got|made|worked out|figured out|picked|chosen|chose) (?:a|the|my) "
       r"(?:plan|date|method|spot|place|bridge|way)(?: to| for| where| how)?|know (?:exactly )?(?:how|when|where) "
       r"(?:ill|im going to|i would|id|i will|to) do it|(?:been|am) (?:saving|stockpiling|collecting|hoarding) "
       rf"(?:up )?(?:my |some |all my )?{_PILLS}|(?:wrote|written|writing|left) (?:a |my )?(?:(?:suicide|goodbye) (?:note|letters?|messages?)|"
       r"(?:note|letters?) (?:to|for) (?:my (?:kids|family|children|parents|mum|mom|dad|wife|husband|partner|sister|"
       r"brother|son|daughter|friends)|everyone|each of them))|(?:gave|given|"
       r"giving) away (?:all )?(?:of )?my (?:things|stuff|belongings|possessions|pets?|cat|dog|guitar|games)"
       r"|said (?:my )?goodbyes?|(?:looked|looking|searched|searching|googled|researched|researching) (?:up )?"
       r"(?:how to|ways to|methods|the best way to|painless ways) (?:kill myself|die|end it|overdose|hang)"
       rf"|(?:got|have|saved|stashed) enough {_PILLS}|enough {_PILLS} (?:saved|stashed|stored|put away|to do it)"
       r"|(?:bought|ordered|got) (?:a |some )?(?:rope|noose|charcoal|helium|razor blades?|shotgun|rifle|pistol|gun))"
       r"(?! (?:for (?:the )?(?:tent|camping|climbing|boat|garden|hunting|the range|work|moving|a party|balloons)"
       r"|to (?:the|my) (?:shelter|charity|friend|cousin|neighbou?r)|before (?:i )?mov|when i moved))"),
    _r("tied_noose", "self_harm", "high",
       r"(?P<core>(?:tied|made|set up|hung|put up) (?:a |the )?noose|(?:rope|noose) is (?:ready|tied|up|hanging)"
       r"|(?:practiced|rehearsed|tried out) (?:it|hanging|how|the knot)|(?:unsafe|not safe) (?:with|around) myself)"),
    _r("means_ready", "self_harm", "high",
       rf"(?P<core>(?:counted|lined|laid|set|sorted) (?:out |up )?(?:all )?(?:of )?(?:my |the |these )?{_PILLS}"
       rf"(?: out| up)?(?! (?:for the week|into (?:the|my) (?:organi[sz]er|dosette|box))){_ROUTINE}|"
       rf"(?:the |my )?(?:{_PILLS}|rope|noose|blades?|razors?|gun) (?:are |is )?(?:all )?(?:counted out|lined up|"
       r"laid out|ready)(?! (?:to collect|for collection|at the pharmacy|to pick up)))"),
    _r("timed_intent_means", "self_harm", "imminent",
       r"(?![^.!?]{0,120}\b(?:with (?:breakfast|lunch|dinner|food|meals?|water)|as prescribed|every (?:day|"
       r"morning|night|evening)|daily)\b)"
       rf"(?P<core>(?:{_PILLS}|rope|noose|blades?|razors?|gun|bridge|ledge|roof)\b.{{0,80}}\b(?:doing|do|going to do|"
       r"gonna do) it (?:tonight|today|right now|now|this (?:evening|weekend|morning))|\b(?:doing|do|going to do|"
       rf"gonna do) it (?:tonight|today|right now|now|this (?:evening|weekend|morning)).{{0,80}}\b(?:{_PILLS}|rope|"
       r"noose|blades?|razors?|gun|bridge|ledge|roof)\b)"),
    # ---- behaviour (time-dependent: high by default) ----
    _r("attempt", "self_harm", "moderate",
       rf"{_I} {WB}(?P<core>(?:tried|attempted|try|attempt) (?:to )?(?:kill myself|suicide|end my life|take my (?:own )?life"
       r"|overdose|od|hang myself|unalive)|(?:suicide )?attempt(?:ed)?\b(?! to (?:fix|make|talk|explain|study|get|do|"
       r"call|reach|cook|run|learn))|survived (?:a|my) (?:suicide )?attempt)", "nrfth"),
    _r("took_pills", "self_harm", "high",
       rf"{_I} {WB}{_ROUTINE}(?P<core>(?:took|taken|swallowed|swallowing|take|taking|downed|necked) (?:a bunch of|too many|all|"
       r"all of|all the|a handful of|handfuls of|loads of|lots of|a whole (?:bottle|box|packet|pack|strip)(?: of)?|"
       r"the whole (?:bottle|box|packet|pack)(?: of)?|[1-9]\d+|an overdose|everything in|them all|the lot)"
       rf"(?: (?:of )?(?:my |the |these )?{_PILLS})?|overdosed|od ?d\b|odd on)"
       r"(?! (?:by accident|accidentally|by mistake|for my (?:back|head|headache|migraine|tooth|cold)|on (?:caffeine|"
       r"coffee|sugar|chocolate|energy drinks?|red bull|netflix|tv|carbs|vitamins?|sun|work)))", "nrfth"),
    _r("aborted_attempt", "self_harm", "high",
       rf"{_I} {WB}(?P<core>(?:nearly|almost|very nearly|came close to|was about to) (?:jumped|jump|stepped|step|walked|"
       r"drove|crashed|took|take|swallowed|hanged|hung|threw myself|throw myself|went through with it|go through with it"
       r"|did it|killed myself|cut))(?! (?:laughing|up|out|off the sofa|off my chair|in the (?:lake|pool|sea) for fun))",
       "nrfth"),
    _r("selfharm_act", "self_harm", "high",
       rf"{_I} {WB}(?P<core>(?:{_SH_VERB}|selfharm\w*|sh) (?:myself|my (?:arms?|legs?|thighs?|wrists?|stomach|skin))"
       r"(?: again| with| on purpose| until| last| yesterday| this| to|$|[.,!])|(?:been|started|keep|kept|"
       r"started) (?:cutting|burning myself|selfharm\w*|hurting myself|scratching myself)|(?:relapsed|cut again|"
       r"sh again|selfharmed|selfharm again)|(?:cut|burned|burnt) (?:myself )?(?:with (?:a|the) )?(?:razor|blade|"
       r"lighter|cigarette|compass|scissors))"
       r"(?! (?:by accident|accidentally|while|when i was cooking|cooking|shaving|chopping|on the (?:stove|oven|"
       r"iron|pan|kettle|door|edge|glass|paper)|at the gym|playing|in the kitchen|in (?:football|training|practice)))",
       "nrfth"),
    # ---- imminent, explicit ----
    _r("already_taken", "self_harm", "imminent",
       rf"(?P<core>(?:ive|i|im) (?:just |already )(?:taken|took|swallowed|taking|swallowing) (?:them|it|all|"
       rf"everything|the (?:pills|tablets|lot|whole))|(?:already|just) (?:taken|took) (?:all )?(?:my |the )?{_PILLS}"
       r"|(?:cut|cutting) (?:too deep|deep)|(?:bleeding|blood) (?:wont|doesnt|will not|isnt going to) stop|"
       r"(?:standing|sitting|stood) on (?:the |a )?(?:edge|ledge|railing|tracks|roof|parapet)|im on the (?:bridge|"
       r"roof|ledge|tracks)(?= .{0,40}(?:jump|end|goodbye|cant|looking down|now))|(?:gun|barrel) (?:is )?"
       r"(?:in my (?:mouth|hand)|to my head|against my head)|(?:rope|noose) (?:is )?(?:around|round) my neck)"
       r"(?! (?:by accident|accidentally))", "nrf"),
    _r("goodbye", "self_harm", "imminent",
       r"(?P<core>this is (?:my )?(?:goodbye|farewell)(?! (?:to (?:my|the|our)|party|gift|card|lunch|drinks|"
       r"session))|goodbye (?:forever|everyone|world|for good)|by the time (?:you|anyone|someone|they) (?:read|"
       r"reads|see|sees|get|gets|find|finds) this|this is my (?:last|final) (?:message|text|post|words|night)|"
       r"(?:tell|please tell) (?:my \w+|everyone|them) (?:that )?i (?:love|loved) them(?: \w+){0,4} goodbye)", "rf"),

    # ---- means-seeking ----
    _r("lethal_dose", "means_seeking", "moderate",
       rf"(?P<core>(?:lethal|fatal|deadly|toxic|overdose|killing) (?:dose|amount|quantity|level|number)|how (?:many|much)"
       r"(?: \w+){0,4} (?:would|does|will|to|do|should) (?:it take|you need|i need|kill|be (?:fatal|lethal|deadly|"
       r"enough)|i take to|to (?:die|kill|od|overdose|not wake up|stop (?:my|your|a) heart))|how (?:many|much) "
       r"(?:\w+ ){0,3}(?:to|would) (?:die|od|overdose|kill (?:me|you|someone|a person))|(?:can|could|would|will) "
       r"(?:you|i|a person|someone|people) (?:die|od|overdose) (?:from|on|if)|what happens if (?:i|you|someone) "
       r"(?:take|takes|swallow|swallows) (?:all|a whole|the whole|[1-9]\d+|too many|a bottle))", ""),
    _r("method_howto", "means_seeking", "high",
       r"(?P<core>how (?:to|do you|do i|would (?:i|you|someone)|does one) (?:tie a noose|hang (?:myself|yourself|"
       r"oneself|someone)|kill (?:myself|yourself|oneself)|slit|cut (?:my|your) wrists|overdose|od\b|suffocate|"
       r"bleed out|end (?:my|your) life)|(?:quickest|easiest|most painless|painless|surest|best|least painful|"
       r"quick|reliable) (?:way|ways|method|methods) (?:to|of) (?:die|dying|kill (?:myself|yourself)|end (?:it|"
       r"my life|your life)|suicide|go)|which (?:veins?|arteries|artery)|how deep (?:do|should|would|to) (?:i |you )?"
       r"cut|how long (?:does it|would it|to) (?:take )?to (?:bleed out|die (?:from|of)|suffocate|drown|hang)|"
       r"(?:survive|survivable|die from|kill you|fatal) (?:a |the )?(?:fall|jump|drop) (?:from|off|of)|"
       r"how (?:high|tall|far) (?:\w+ ){0,6}(?:to (?:die|be fatal|kill|not survive)|(?:fatal|lethal|deadly|"
       r"survivable)|so (?:that )?(?:you|i|someone|a person) (?:dont|wont|wouldnt|doesnt|die)|not survive))", ""),
    _r("height_threshold", "means_seeking", "moderate",
       r"(?P<core>(?:bridges?|buildings?|cliffs?|towers?|car ?parks?|parking (?:garages?|structures?|lots?)|roofs?"
       r"|rooftops?|balcon(?:y|ies)|floors?|storeys?|stories)(?: \w+){0,4} (?:over|above|higher than|taller than|"
       r"at least|more than|bigger than|>) \d+ ?(?:m|ft|feet|foot|floors?|storeys?|stories)?\b|(?:no|without) "
       r"(?:a )?(?:fence|fences|barrier|barriers|railings?|nets?|suicide (?:nets?|barriers?))|(?:roof|rooftop) "
       r"(?:access|that (?:is|are) open|open to the public))", ""),
    _r("tallest_places", "means_seeking", "moderate",
       r"(?P<core>(?:tallest|highest) (?:bridges?|buildings?|cliffs?|towers?|car ?parks?|parking garages?|"
       r"rooftops?)|(?:trains?|express|railway|rail) (?:times?|timetable|schedule)|when does the (?:next|last|"
       r"express|fast|non ?stop) train|which trains (?:dont|do not|never) stop|(?:express|fast|freight) trains? "
       r"(?:pass|go|come|run) through|where (?:can|could|do) (?:i|you|one) (?:buy|get|find) (?:a |some )?rope)", "c"),
    _r("buy_means", "means_seeking", "moderate",
       r"(?P<core>where (?:can|could|do|would|should) (?:i|you|one|someone) (?:buy|get|find|order|get hold of) "
       r"(?:a |an |some )?(?:gun|pistol|handgun|firearm|rifle|shotgun|noose|helium|charcoal|barbiturates|nembutal"
       r"|pentobarbital|cyanide|poison|sodium nitrite|exit bag)|(?:buy|get|order) (?:a |some )?(?:nembutal|"
       r"pentobarbital|cyanide|sodium nitrite|exit bag)|(?:want|need|going) to (?:buy|get) a gun|(?:easiest|quickest|fastest)"
       r" way to (?:buy|get) a (?:gun|pistol|firearm)|(?:buy|get) a (?:gun|pistol|firearm) (?:without|with no) "
       r"(?:a )?(?:background check|licen[cs]e|permit|id))", ""),
    # ---- harm to others ----
    _r("hurt_others", "harm_to_others", "moderate",
       rf"{_I} {W}(?P<core>(?:kill|killing|murder|murdering|stab|stabbing|shoot|shooting|strangle|strangling|poison|"
       rf"poisoning|hurt|hurting|attack|attacking|beat up|beating up|run over|smother|smothering|smash) {_TARGET})"
       r"(?! (?:with kindness|at (?:chess|cards|the game|the interview|the exam|the show)|in (?:the |a )?(?:game|"
       r"match|round|fortnite|minecraft|call of duty|cod|chess)|a (?:message|text|email|line|note|look)|an email"
       r"|if (?:he|she|they) (?:eats?|ate|takes?|borrows?|touch(?:es)? my (?:food|stuff|charger))))", "nrfj"),
    _r("kill_threat_plan", "harm_to_others", "high",
       rf"(?P<core>(?:shoot|shooting) up (?:the|my|a) (?:school|office|work|workplace|place|church|mall)|"
       r"make (?:them|him|her|everyone) (?:all )?pay(?= .{0,30}(?:gun|knife|blood|dead|die|kill)))", "nrf"),
    # ---- harm from others ----
    _r("abused_physical", "harm_from_others", "moderate",
       r"(?P<core>\b(?:he|she|they|my (?:\w+ )?(?:partner|husband|wife|boyfriend|girlfriend|bf|gf|dad|father|"
       r"mum|mom|mother|stepdad|stepfather|stepmom|brother|sister|ex|uncle|boss|parents?|carer|son|daughter|"
       r"roommate|flatmate)|someone|people at school)(?: \w+){0,2}? (?:hits|hit|beats|beat|punches|punched|"
       r"slaps|slapped|kicks|kicked|shoves|shoved|pushes|pushed|throws things at|threw \w+ at|bruised|burned|"
       r"burns|drags|dragged|bites|bit) me\b)"
       r"(?! (?:up|at|in|to|into|out|off|forward|towards|with (?:a|his|her|the) (?:ball|pillow))|back\b)", "rfj"),
    _r("abused_severe", "harm_from_others", "high",
       r"(?P<core>(?:\b(?:he|she|they|my \w+)(?: \w+){0,2}? (?:chokes|choked|strangles|strangled|rapes|raped|"
       r"sexually assaulted|assaulted|molests|molested|forced himself on|forces me to have sex)\b)|(?:he|she|they|"
       r"my \w+)(?: \w+){0,3}? (?:said|says|told me|threatened|threatens|keeps saying|swore|screamed|texted|texting|texts|messaged|"
       r"messaging|saying|threatening|yelled)(?: me)?(?: that)?"
       r" (?:hed|shed|theyd|hell|shell|theyll|he would|she would|they would|he will|she will|hes going to|shes "
       r"going to|to) (?:kill|hurt|murder|shoot|stab|strangle|end|beat) (?:me|us|my|the kids)|(?:pulled|held|"
       r"pointed) a (?:knife|gun) (?:on|at|to) me)", "fj"),
    _r("fear_of_person", "harm_from_others", "moderate",
       r"(?P<core>(?:scared|afraid|terrified|frightened) (?:of (?:him|her|them|my (?:\w+ )?(?:partner|husband|wife|"
       r"boyfriend|girlfriend|dad|father|stepdad|mum|mom|ex))|to go (?:back )?home|(?:of )?what (?:he|she|they)ll "
       r"do|(?:he|she|they)ll (?:hurt|kill|find) me|for my (?:life|safety))|(?:dont|do not) feel safe (?:at home|"
       r"in my (?:own )?(?:house|home|flat)|with (?:him|her|them|my \w+)|around (?:him|her|them))|(?:wont|doesnt) let"
       r" me (?:leave|go out|see my (?:friends|family)|have (?:money|my phone))|(?:locks|locked) me (?:in|out)|"
       r"takes my (?:phone|money|keys|bank card))", "nrf"),
    _r("told_to_die", "harm_from_others", "moderate",
       r"(?P<core>(?:told|tell|telling|tells|texted|messaged|keep telling|keeps telling) me (?:to|i should) (?:go )?"
       r"(?:kill myself|kms|kys|die|drink bleach|unalive)|kys\b|(?:i )?(?:am|im|get|got|getting) (?:being )?"
       r"bullied)", "nf"),
)
