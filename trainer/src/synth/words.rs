//! Built-in vocabularies: common lowercase English words, table headers, row labels, and
//! receipt items.

/// About 300 common lowercase English words (ASCII, 2 to 8 letters).
pub const WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "was", "one",
    "our", "out", "day", "get", "has", "him", "his", "how", "man", "new", "now", "old", "see",
    "two", "way", "who", "boy", "did", "its", "let", "put", "say", "she", "too", "use", "cat",
    "dog", "sun", "red", "big", "cup", "box", "hat", "map", "pen", "car", "bus", "egg", "ice",
    "key", "sea", "sky", "tea", "toy", "win", "yes", "zoo", "about", "after", "again", "air",
    "also", "animal", "answer", "apple", "area", "away", "baby", "back", "ball", "bank", "bear",
    "bed", "bird", "black", "blue", "boat", "body", "book", "both", "bread", "bring", "brown",
    "build", "call", "came", "carry", "chair", "change", "child", "city", "class", "clean",
    "clock", "close", "cloud", "cold", "color", "come", "cook", "cool", "corn", "count", "cover",
    "cross", "dance", "dark", "door", "down", "draw", "dream", "dress", "drink", "drive", "early",
    "earth", "east", "easy", "eight", "end", "enough", "even", "every", "eye", "face", "fall",
    "family", "farm", "fast", "father", "field", "fire", "first", "fish", "five", "floor",
    "flower", "fly", "food", "foot", "forest", "four", "free", "friend", "from", "fruit", "full",
    "game", "garden", "girl", "give", "glass", "gold", "good", "grass", "great", "green", "ground",
    "group", "grow", "hand", "happy", "hard", "head", "hear", "heart", "help", "here", "high",
    "hill", "home", "horse", "hot", "house", "idea", "island", "jump", "just", "keep", "kind",
    "king", "know", "lake", "land", "large", "last", "late", "learn", "leave", "left", "letter",
    "light", "like", "line", "lion", "list", "little", "live", "long", "look", "love", "low",
    "make", "many", "mark", "milk", "money", "month", "moon", "more", "morning", "mother",
    "mountain", "move", "music", "name", "near", "never", "next", "night", "north", "number",
    "ocean", "open", "orange", "page", "paper", "park", "party", "people", "picture", "place",
    "plant", "play", "point", "power", "quick", "quiet", "rain", "read", "right", "river", "road",
    "rock", "room", "round", "run", "salt", "same", "school", "seven", "shape", "ship", "shoe",
    "short", "show", "side", "sing", "sister", "sleep", "slow", "small", "snow", "song", "soon",
    "sound", "south", "space", "speak", "spring", "stand", "star", "start", "stone", "stop",
    "story", "street", "strong", "study", "summer", "table", "talk", "teacher", "three", "time",
    "today", "tree", "true", "under", "until", "voice", "wait", "walk", "warm", "watch", "water",
    "week", "west", "white", "wind", "window", "winter", "word", "work", "world", "write", "year",
    "yellow", "young",
];

/// Column-name sets for tables.
pub const TABLE_COLUMNS: &[&[&str]] = &[
    &["Qty", "Price", "Cost"],
    &["Mon", "Tue", "Wed", "Thu", "Fri"],
    &["Jan", "Feb", "Mar", "Apr", "May"],
    &["Q1", "Q2", "Q3", "Q4"],
    &["Red", "Blue", "Green"],
    &["Math", "Art", "Music"],
    &["Wins", "Loss", "Draw"],
    &["Old", "New"],
    &["Max", "Min", "Avg"],
    &["Age", "Score", "Rank"],
];

/// Row-label sets for tables.
pub const TABLE_ROWS: &[&[&str]] = &[
    &["A", "B", "C"],
    &["X", "Y", "Z"],
    &["Ann", "Bob", "Cal", "Dan", "Eve", "Fay", "Gus", "Ida"],
    &["Tea", "Pen", "Cup", "Hat", "Box", "Bag"],
    &["North", "South", "East", "West"],
    &["Team1", "Team2", "Team3"],
];

/// Receipt item names.
pub const ITEMS: &[&str] = &[
    "Apple", "Bread", "Milk", "Eggs", "Tea", "Rice", "Soap", "Juice", "Cheese", "Pasta", "Butter",
    "Coffee", "Sugar", "Salt", "Beans", "Fish", "Banana", "Onion", "Lemon", "Pizza", "Soup",
    "Cake", "Water", "Jam", "Honey", "Flour", "Nuts", "Corn", "Candy", "Pens",
];

/// Receipt titles.
pub const SHOPS: &[&str] = &[
    "RECEIPT", "STORE", "MARKET", "CAFE", "SHOP", "GROCERY", "BAKERY",
];
