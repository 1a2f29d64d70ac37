"""The source of the six question sets: hand-written questions, as Python literals for brevity.

Run it in this folder to rewrite the JSONL files (see README.md).
"""

import json

A = ["000_a357e0c64db65e6a.txt", "001_532b7867ba6e277e.txt", "002_992cb9edb926320c.txt", "003_2323e470a6d18323.txt", "004_71f74e865b874536.txt"]


def q(qid, question, answers=(), sources=(), qtype=None, history=(), every=False):
    r = {"id": qid, "question": question}
    if history:
        r["history"] = list(history)
    r["answers"] = list(answers)
    r["sources"] = list(sources)
    if every:
        r["answers_all"] = True
    r["type"] = qtype or ("fact" if answers else "unanswerable")
    return r


sets = {}
sets["bundled_dev"] = [
 q("b01", "Which intelligence service confirmed the death of the captured North Korean soldier?", ["National Intelligence Service"], [A[0]]),
 q("b02", "Who warned the United States about possible nuclear testing?", ["Ryabkov"], [A[0]]),
 q("b03", "Which two villages did Russian forces claim to have taken?", ["Ivanivka", "Zahryzove"], [A[0]], every=True),
 q("b04", "Near which place did Ukrainian strikes hinder North Korean supply lines?", ["Novoivanovka"], [A[0]]),
 q("b05", "What shortage did the North Korean troops face after the strikes?", ["drinking water"], [A[0]]),
 q("b06", "Who is the U.S. Defense Secretary mentioned in the coverage?", ["Austin"], [A[1]]),
 q("b07", "Who confirmed skirmishes in which North Korean soldiers were fired upon?", ["Kovalenko"], [A[1]]),
 q("b08", "Which council is Andriy Kovalenko from?", ["National Security and Defense Council"], [A[1]]),
 q("b09", "Who is the Pentagon press secretary?", ["Ryder"], [A[2]]),
 q("b10", "What did Putin say the planned deployment of U.S. intermediate-range missiles posed?", ["fresh threats"], [A[2]]),
 q("b11", "Which think tank described communication problems between Russian and North Korean forces?", ["Institute for the Study of War"], [A[2]]),
 q("b12", "In which region is Russia continuing its grinding advance?", ["Donetsk"], [A[2]]),
 q("b13", "In what role are the North Korean soldiers primarily deployed?", ["infantry"], [A[2], A[3]]),
 q("b14", "Which Ukrainian body reported the deaths of 200 Russian and North Korean soldiers?", ["Defense Intelligence", "DIU"], [A[4]]),
 q("b15", "What kind of drones did Ukraine use against the combined units?", ["FPV"], [A[4]]),
 q("b16", "Whose soldiers died in a friendly fire incident involving North Korean troops?", ["Chechen", "Kadyrov"], [A[4]]),
 q("b17", "How many Russian drones did Ukraine shoot down?", ["13"], [A[0]], "number"),
 q("b18", "How many Russian drones were launched during the recent attacks?", ["24"], [A[0]], "number"),
 q("b19", "How many North Korean soldiers have already arrived?", ["8,000"], [A[1]], "number"),
 q("b20", "How many casualties do officials estimate Russia has suffered since the start of the war?", ["half a million"], [A[1]], "number"),
 q("b21", "How much territory does Belousov say Moscow's forces capture per day?", ["30 square kilometers"], [A[2]], "number"),
 q("b22", "How many North Korean servicemen went missing?", ["three"], [A[2]], "number"),
 q("b23", "How many Chechen soldiers died in the friendly fire incident?", ["eight"], [A[4]], "number"),
 q("b24", "How many soldiers did Ukraine's Defense Intelligence say had died?", ["200"], [A[4]], "number"),
 q("b25", "How many North Korean soldiers were sent to Russia?", ["10,000"], [A[0], A[1], A[2], A[3]], "number"),
 q("b26", "How many ships did North Korea send to Russia?"),
 q("b27", "Which Chinese official commented on the North Korean troops?"),
 q("b28", "What is the price of rice in Pyongyang?"),
 q("b29", "How many North Korean tanks were destroyed in Kursk?"),
 q("b30", "Who is the president of South Korea?"),
 q("b31", "What did Kim Jong-un say about the casualties?"),
 q("b32", "How many North Korean soldiers were taken prisoner in Donetsk?"),
 q("b33", "Who is China's defense minister?"),
 q("b34", "What is the population of North Korea?"),
 q("b35", "What territorial gains did he claim?", ["30 square kilometers"], [A[2]], "followup", ["Who is Russia's Defense Minister?"]),
 q("b36", "What is its acronym?", ["GUR"], [A[2], A[0]], "followup", ["Which agency reported that 30 North Korean soldiers were killed or wounded?"]),
 q("b37", "What could he gain from sending troops?", ["economic", "technolog"], [A[1]], "followup", ["Who is the leader of North Korea?"]),
 q("b38", "And how many were shot down?", ["13"], [A[0]], "followup", ["How many Russian drones were launched during the recent attacks?"]),
 q("b39", "Which U.S. Defense Secretary warned about the troops?", ["Austin"], [A[1]], "switch", ["How many North Korean troops were sent to Russia?"]),
 q("b40", "What is the price of rice in Pyongyang?", [], [], "unanswerable", ["How many North Korean troops were sent to Russia?"]),
 q("b41", "Who described the integration problems in Kursk?", ["Institute for the Study of War"], [A[2]], "switch", ["Who is the leader of North Korea?", "What could he gain from sending troops?"]),
]
sets["bundled_heldout"] = [
 q("bh01", "Which deputy foreign minister said Russia rules out nothing?", ["Ryabkov"], [A[0]]),
 q("bh02", "Who told a meeting with top military brass that Russia must take additional measures?", ["Putin"], [A[2]]),
 q("bh03", "Which U.S. body corroborated the reports of North Korean combat deaths?", ["Pentagon"], [A[2]]),
 q("bh04", "How many square miles per day do Moscow's forces capture, according to Belousov?", ["11.5"], [A[2]], "number"),
 q("bh05", "How many villages did Russian forces claim to have taken?", ["two"], [A[0]], "number"),
 q("bh06", "Around how many villages did the weekend skirmishes take place?", ["three"], [A[2]], "number"),
 q("bh07", "Who might hope North Korean troops will serve as propaganda?", ["Putin"], [A[1]]),
 q("bh08", "What war were the North Korean forces last involved in before this hiatus?", ["Korean War"], [A[1]]),
 q("bh09", "Where did the United States confront Russia about its troop deployments?", ["United Nations"], [A[1]]),
 q("bh10", "How many North Korean submarines were sent to Russia?"),
 q("bh11", "Who is the Japanese prime minister?"),
 q("bh12", "Which German think tank assessed the North Korean deployment?"),
 q("bh13", "How many Ukrainian drones did Russia shoot down?"),
 q("bh14", "What is the capital of Ukraine's economy ministry budget?"),
 q("bh15", "When did he take office?", [], [], "unanswerable", ["Who is the Pentagon press secretary?"]),
 q("bh16", "What did he warn about?", ["integration", "front lines"], [A[1]], "followup", ["Who is the U.S. Defense Secretary?"]),
 q("bh17", "Who died from serious injuries?", ["soldier"], [A[0]], "switch", ["How many drones did Ukraine shoot down?"]),
 q("bh18", "What about the drinking water?", ["shortages"], [A[0]], "followup", ["What logistical difficulties did the North Korean troops face near Novoivanovka?"]),
 q("bh19", "What nickname does the coverage give North Korea?", ["hermit kingdom"], [A[2]], "switch", ["Who is Russia's Defense Minister?"]),
 q("bh20", "How many members does the North Korean parliament have?"),
]
H = ["a_storm.txt", "b_recovery.txt", "c_schools.md", "d_football.txt"]
sets["harbour_dev"] = [
 q("h01", "Who is the mayor of Brindmouth?", ["Vasquez"], [H[0]]),
 q("h02", "How many residents were evacuated during the storm?", ["1,200", "1,500"], [H[0], H[1]], "conflict", every=True),
 q("h03", "How strong were the winds during the storm?", ["140 kilometres per hour"], [H[0]], "number"),
 q("h04", "How long could repairs to the sea wall take?", ["six months"], [H[0]], "number"),
 q("h05", "When was the sea wall first built?", ["1952"], [H[1]]),
 q("h06", "Who is the director of the Port Authority?", ["Okafor"], [H[1]]),
 q("h07", "How much will the port closure cost local businesses?", ["3 million euros"], [H[1]], "number"),
 q("h08", "Where will Priya Raman's pupils be taught?", ["town library"], [H[2]]),
 q("h09", "How many schools in the harbour district will stay closed?", ["four"], [H[2]], "number"),
 q("h10", "Who did Brindmouth Rovers beat in the final?", ["Castleford"], [H[3]]),
 q("h11", "How many supporters watched the cup final?", ["8,000"], [H[3]], "number"),
 q("h12", "Who scored twice in the second half?", ["Lindqvist"], [H[3]]),
 q("h13", "Which service sent emergency crews to pump water out of the tunnels?", ["fire service"], [H[0]]),
 q("h14", "How many firefighters worked through the night?"),
 q("h15", "How many ships were damaged by the storm?"),
 q("h16", "Who is the mayor of Castleford?"),
 q("h17", "How much money is in the city's emergency budget?"),
 q("h18", "What was the score of the semi-final?"),
 q("h19", "What did its director estimate?", ["3 million euros"], [H[1]], "followup", ["Who runs the container terminal?"]),
 q("h20", "What did she warn about?", ["sea wall"], [H[0]], "followup", ["Who is the mayor of Brindmouth?"]),
 q("h21", "In front of how many supporters?", ["8,000"], [H[3]], "followup", ["Who scored twice in the cup final?"]),
 q("h22", "Who coaches Brindmouth Rovers?", ["Kowalski"], [H[3]], "switch", ["Who is the mayor of Brindmouth?"]),
 q("h23", "How many tourists left the city before the storm?", [], [], "unanswerable", ["How strong were the winds during the storm?"]),
]
sets["harbour_heldout"] = [
 q("hh01", "Which office measured the wind speed?", ["national weather office"], [H[0]]),
 q("hh02", "When will ships dock at the container terminal again?", ["Friday"], [H[1]]),
 q("hh03", "When did most schools reopen?", ["Monday"], [H[2]]),
 q("hh04", "What was the score of the regional cup final?", ["3-1"], [H[3]], "number"),
 q("hh05", "How many people died in the storm?"),
 q("hh06", "Who is the headteacher of Castleford school?"),
 q("hh07", "Who did she dedicate the victory to?", ["families"], [H[3]], "followup", ["Who is the coach of Brindmouth Rovers?"]),
 q("hh08", "Why did four schools stay closed?", ["water damage"], [H[2]], "switch", ["Who is the director of the Port Authority?"]),
 q("hh09", "How many homes lost power?"),
 q("hh10", "What destroyed much of the old town?", ["flood"], [H[1]]),
]
L = ["a_bloom.txt", "b_fishing.txt", "c_cleanup.txt", "d_festival.txt"]
sets["lakeside_dev"] = [
 q("l01", "What has closed Lake Orrin to swimmers?", ["algae bloom"], [L[0]]),
 q("l02", "How large is the area covered by the algae bloom?", ["40 square kilometres", "25 square kilometres"], [L[0], L[2]], "conflict", every=True),
 q("l03", "Who leads the Orrin Water Institute's monitoring team?", ["Moravec"], [L[0]]),
 q("l04", "How far above the safe limit were toxin levels near Kessel?", ["six times"], [L[0]], "number"),
 q("l05", "Which river feeds Lake Orrin from the south?", ["Varn"], [L[0]]),
 q("l06", "What do local officials blame for the bloom?", ["fertiliser run-off"], [L[0]]),
 q("l07", "Who leads the farmers' union?", ["Albers"], [L[0]]),
 q("l08", "How many members of the co-operative have stopped fishing?", ["220"], [L[1]], "number"),
 q("l09", "How many members does the fishing co-operative have?", ["310"], [L[1]], "number"),
 q("l10", "Who chairs the Lake Orrin Fishing Co-operative?", ["Halloran"], [L[1]]),
 q("l11", "How much compensation did the fisheries minister promise?", ["2 million euros"], [L[1]], "number"),
 q("l12", "Who is the provincial fisheries minister?", ["Lindgren"], [L[1]]),
 q("l13", "How much will the clean-up plan spend?", ["35 million euros"], [L[2]], "number"),
 q("l14", "By which year does the plan aim to halve the phosphorus entering the lake?", ["2030"], [L[2]]),
 q("l15", "How many farms will be paid to leave land unplanted?", ["90"], [L[2]], "number"),
 q("l16", "Which party voted against the plan?", ["Green Party"], [L[2]]),
 q("l17", "At how many stations will phosphorus be measured?", ["twelve"], [L[2]], "number"),
 q("l18", "How many visitors do the organisers expect at the festival?", ["15,000"], [L[3]], "number"),
 q("l19", "Where will the festival concerts move to?", ["market square"], [L[3]]),
 q("l20", "How many extra officers will be on duty?", ["60"], [L[3]], "number"),
 q("l21", "Which newspaper reported that ticket sales were down by a third?", ["Kessel Courier"], [L[3]]),
 q("l22", "What has been cancelled at the festival?", ["boat race"], [L[3]]),
 q("l23", "Who is the Kessel police chief?", ["Castell"], [L[3]]),
 q("l24", "How many boats were damaged by the algae bloom?"),
 q("l25", "Who is the mayor of Kessel?"),
 q("l26", "How much phosphorus enters the lake each year?"),
 q("l27", "How many fish died in Lake Orrin?"),
 q("l28", "Which river feeds Lake Orrin from the north?"),
 q("l29", "How many visitors are expected at the Dunmore festival?"),
 q("l30", "When will the lake reopen to swimmers?"),
 q("l31", "How many farmers protested against the plan?"),
 q("l32", "How much did he estimate the losses at?", ["1.8 million"], [L[1]], "followup", ["Who chairs the Lake Orrin Fishing Co-operative?"]),
 q("l33", "What did he say the plan aimed to do?", ["halve"], [L[2]], "followup", ["Who is the environment minister?"]),
 q("l34", "And last year?", ["25,000"], [L[3]], "followup", ["How many visitors do the organisers expect at the festival?"]),
 q("l35", "How often will it measure phosphorus?", ["every month"], [L[2]], "followup", ["Which institute analysed the satellite images of the bloom?"]),
 q("l36", "Who is the Kessel police chief?", ["Castell"], [L[3]], "switch", ["How much will the clean-up plan spend?"]),
 q("l37", "What is the price of fish in Dunmore?", [], [], "unanswerable", ["Who leads the farmers' union?"]),
 q("l38", "What did the farmers' union leader say caused the bloom?", ["warm weather", "low rainfall"], [L[0]], "switch", ["Who chairs the Lake Orrin Fishing Co-operative?", "How much did he estimate the losses at?"]),
]
sets["lakeside_heldout"] = [
 q("lh01", "Which towns were advised to keep children and dogs away from the shore?", ["Kessel", "Dunmore"], [L[0]], every=True),
 q("lh02", "Who is the festival director?", ["Verbeek"], [L[3]]),
 q("lh03", "How much does the co-operative's survey put the season's losses at?", ["4 million euros"], [L[1]], "number"),
 q("lh04", "How long is the clean-up plan?", ["five-year", "five years"], [L[2]], "number"),
 q("lh05", "How many visitors came to the festival last year?", ["25,000"], [L[3]], "number"),
 q("lh06", "Who is the environment minister?", ["Brandt"], [L[2]]),
 q("lh07", "How many fishing boats does the co-operative own?"),
 q("lh08", "Who is the director of the Varn River authority?"),
 q("lh09", "How much did the festival tickets cost?"),
 q("lh10", "When will it be paid out?", ["September"], [L[1]], "followup", ["How much compensation did the fisheries minister promise?"]),
 q("lh11", "Where did restaurants in Dunmore start buying fish?", ["coast"], [L[1]], "switch", ["Who is the Kessel police chief?"]),
 q("lh12", "What about the boat race?", ["cancelled"], [L[3]], "followup", ["Will the Kessel summer festival go ahead this weekend?"]),
 q("lh13", "How many stations does the Green Party want?"),
 q("lh14", "What plant in Kessel will be upgraded?", ["sewage plant"], [L[2]]),
 q("lh15", "How many members does the farmers' union have?"),
]
for name, rows in sets.items():
    with open(f"{name}.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(name, len(rows), sum(1 for r in rows if not r["answers"]), sum(1 for r in rows if r.get("history")))
