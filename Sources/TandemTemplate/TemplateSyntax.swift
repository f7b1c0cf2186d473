/// The parsed template: statements and expressions.
indirect enum TemplateNode: Sendable {
    case text(String)
    case output(TemplateExpression)
    /// `{% for a[, b] in items [if condition] %} body {% else %} empty {% endfor %}`
    case loop(targets: [String], items: TemplateExpression, condition: TemplateExpression?, body: [TemplateNode], empty: [TemplateNode])
    /// `{% if %}`, each `{% elif %}`, then the `{% else %}` body.
    case branch([(TemplateExpression, [TemplateNode])], otherwise: [TemplateNode])
    /// `{% set name = value %}`, `{% set a, b = value %}` or `{% set namespace.attribute = value %}`.
    case assign(names: [String], attribute: String?, value: TemplateExpression)
    case breakLoop
    case continueLoop
}

indirect enum TemplateExpression: Sendable {
    case literal(TemplateValue)
    case variable(String)
    case list([TemplateExpression])
    case tuple([TemplateExpression])
    case dictionary([(TemplateExpression, TemplateExpression)])
    case attribute(TemplateExpression, String)
    case item(TemplateExpression, TemplateExpression)
    case slice(TemplateExpression, start: TemplateExpression?, stop: TemplateExpression?, step: TemplateExpression?)
    /// A global function (`raise_exception`, `namespace`, `range`) or a method (`text.strip()`).
    case call(TemplateExpression, [TemplateExpression], [(String, TemplateExpression)])
    case filter(TemplateExpression, String, [TemplateExpression], [(String, TemplateExpression)])
    case test(TemplateExpression, String, [TemplateExpression], negated: Bool)
    case negate(TemplateExpression)
    case not(TemplateExpression)
    case binary(String, TemplateExpression, TemplateExpression)
    case and(TemplateExpression, TemplateExpression)
    case or(TemplateExpression, TemplateExpression)
    /// `left op right [op right …]` for ==, !=, <, <=, >, >=, in, not in.
    case compare(TemplateExpression, [(String, TemplateExpression)])
    case conditional(TemplateExpression, condition: TemplateExpression, otherwise: TemplateExpression?)
}
